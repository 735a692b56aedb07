# The documentation's complete C examples, extracted at configure time so
# that the test suite compiles (and runs) exactly what README.md and the
# manual in docs/*.md show (tests/CMakeLists.txt passes them all; the
# tutorial is doc.tutorial in README.md, the walked-through chat test
# doc.walkthrough in docs/testing.md).
#
# A fenced block is extracted when its info string names a file:
#
#   ```c file=tutorial/counter.c
#   ...
#   ```
#
# GitHub reads only the first word ("c") and renders the block as C; the
# rest of the line is for us. Words after the language:
#
#   file=DIR/NAME   required: the block goes into NAME of program DIR. Every
#                   block naming the same file is appended to it, in the
#                   order of the document, so prose can sit between the
#                   pieces of one file. Each piece starts with a #line
#                   directive, so compiler errors and failing assertions
#                   point at the document's own lines.
#   test            the program is a test: it is run by ctest (any block of
#                   the program may say it, once is enough)
#   link=T[,T…]     link the program with these CMake targets as well
#                   (chanc::testing always)
#
# A program is every file under one DIR: its .c files are compiled together
# into one executable; a program that is not a test but has no main() gets
# an empty one, so that a complete example is still linked (every name it
# uses must exist). Blocks without file= are fragments and are left alone.
#
# chanc_doc_examples(OUT_DIR <dir> DOCS <file.md>...) writes the files under
# OUT_DIR/<DIR>/ (only when their text changed, so nothing rebuilds for an
# edit elsewhere in the document), makes every document a configure
# dependency (editing it re-extracts), and sets in the caller's scope:
#   CHANC_DOC_PROGRAMS         the programs (DIR names)
#   CHANC_DOC_<DIR>_SOURCES    its extracted .c files
#   CHANC_DOC_<DIR>_TEST       TRUE when a block said `test`
#   CHANC_DOC_<DIR>_LINK       extra link targets
#   CHANC_DOC_<DIR>_DOC        the document it came from
# Mistakes (an unknown word, a bad file name, one program in two documents,
# an unclosed block) stop the configure step with the document's line.

function(chanc_doc_examples)
  cmake_parse_arguments(ARG "" "OUT_DIR" "DOCS" ${ARGN})
  set(programs "")
  set(files "")
  foreach(doc IN LISTS ARG_DOCS)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${doc}")
    file(READ "${doc}" text)
    # CMake lists split on ';' (except inside [ ]): hide both before
    # splitting the text into lines, restore them when writing.
    string(REPLACE ";" "@CHANC_SEMICOLON@" text "${text}")
    string(REPLACE "[" "@CHANC_LBRACKET@" text "${text}")
    string(REPLACE "]" "@CHANC_RBRACKET@" text "${text}")
    string(REPLACE "\n" ";" lines "${text}")
    set(lineno 0)
    set(in_fence FALSE)
    set(current "") # the file the open block belongs to ("" = not extracted)
    foreach(line IN LISTS lines)
      math(EXPR lineno "${lineno} + 1")
      if(NOT in_fence)
        if(line MATCHES "^ *(```+)([^`]*)$")
          set(in_fence TRUE)
          set(open_line ${lineno})
          set(current "")
          set(fence "${CMAKE_MATCH_1}")
          string(STRIP "${CMAKE_MATCH_2}" info)
          if(info MATCHES "^c( |\t)")
            string(REGEX REPLACE "^c[ \t]+" "" words "${info}")
            string(REGEX REPLACE "[ \t]+" ";" words "${words}")
            set(is_test FALSE)
            set(link "")
            foreach(w IN LISTS words)
              if(w MATCHES "^file=([A-Za-z0-9_-]+)/([A-Za-z0-9_.-]+\\.[ch])$")
                set(current "${CMAKE_MATCH_1}/${CMAKE_MATCH_2}")
                set(prog "${CMAKE_MATCH_1}")
              elseif(w STREQUAL "test")
                set(is_test TRUE)
              elseif(w MATCHES "^link=(.+)$")
                string(REPLACE "," ";" link "${CMAKE_MATCH_1}")
              else()
                message(FATAL_ERROR "${doc}:${lineno}: code block: unknown or malformed "
                        "'${w}' (expected file=DIR/NAME.c|.h, test, link=TARGET,...)")
              endif()
            endforeach()
            if(current STREQUAL "")
              message(FATAL_ERROR "${doc}:${lineno}: code block with attributes but no "
                      "file=DIR/NAME.c")
            endif()
            if(DEFINED _doc_of_${prog} AND NOT "${_doc_of_${prog}}" STREQUAL "${doc}")
              message(FATAL_ERROR "${doc}:${lineno}: program '${prog}' is also in "
                      "${_doc_of_${prog}}; a program lives in one document")
            endif()
            set(_doc_of_${prog} "${doc}")
            if(NOT prog IN_LIST programs)
              list(APPEND programs ${prog})
              set(_test_${prog} FALSE)
              set(_link_${prog} "")
            endif()
            if(is_test)
              set(_test_${prog} TRUE)
            endif()
            list(APPEND _link_${prog} ${link})
            if(NOT current IN_LIST files)
              list(APPEND files "${current}")
              set(_text_${current} "")
            endif()
            math(EXPR first "${lineno} + 1")
            string(APPEND _text_${current} "#line ${first} \"${doc}\"\n")
          endif()
        endif()
      else()
        # A closing fence has at least as many backticks as the opening one.
        set(closing FALSE)
        if(line MATCHES "^ *(```+) *$")
          if(NOT "${CMAKE_MATCH_1}" STRLESS "${fence}")
            set(closing TRUE)
          endif()
        endif()
        if(closing)
          set(in_fence FALSE)
          set(current "")
        elseif(NOT current STREQUAL "")
          string(APPEND _text_${current} "${line}\n")
        endif()
      endif()
    endforeach()
    if(in_fence)
      message(FATAL_ERROR "${doc}:${open_line}: code block never closed")
    endif()
  endforeach()

  foreach(f IN LISTS files)
    set(t "${_text_${f}}")
    string(REPLACE "@CHANC_SEMICOLON@" ";" t "${t}")
    string(REPLACE "@CHANC_LBRACKET@" "[" t "${t}")
    string(REPLACE "@CHANC_RBRACKET@" "]" t "${t}")
    string(REGEX MATCH "^[^/]+" prog "${f}")
    set(out "${ARG_OUT_DIR}/${f}")
    # configure_file(COPYONLY) rewrites the output only when it differs.
    file(WRITE "${out}.new" "${t}")
    configure_file("${out}.new" "${out}" COPYONLY)
    file(REMOVE "${out}.new")
    if(f MATCHES "\\.c$")
      list(APPEND _src_${prog} "${out}")
      if("\n${t}" MATCHES "\nint[ \t]+main[ \t]*\\(")
        set(_main_${prog} TRUE)
      endif()
    endif()
  endforeach()

  foreach(prog IN LISTS programs)
    if(NOT _main_${prog})
      if(_test_${prog})
        message(FATAL_ERROR "${_doc_of_${prog}}: program '${prog}' is marked test "
                "but none of its files defines int main(")
      endif()
      set(stub "${ARG_OUT_DIR}/${prog}/.main.c")
      file(WRITE "${stub}.new" "/* ${prog} is a complete example, not a test: linked, not run. */\n"
           "int main(void) { return 0; }\n")
      configure_file("${stub}.new" "${stub}" COPYONLY)
      file(REMOVE "${stub}.new")
      list(APPEND _src_${prog} "${stub}")
    endif()
    set(CHANC_DOC_${prog}_SOURCES "${_src_${prog}}" PARENT_SCOPE)
    set(CHANC_DOC_${prog}_TEST ${_test_${prog}} PARENT_SCOPE)
    set(CHANC_DOC_${prog}_LINK "${_link_${prog}}" PARENT_SCOPE)
    set(CHANC_DOC_${prog}_DOC "${_doc_of_${prog}}" PARENT_SCOPE)
  endforeach()
  set(CHANC_DOC_PROGRAMS "${programs}" PARENT_SCOPE)
endfunction()
