# Install rules: libraries, headers, a CMake package (find_package(chanc)
# gives chanc::chanc, chanc::testing, chanc::server and chanc::redis) and
# pkg-config files (chanc, chanc-testing, chanc-redis).
include(CMakePackageConfigHelpers)

set_target_properties(chanc_testing PROPERTIES EXPORT_NAME testing)
set_target_properties(chanc_server PROPERTIES EXPORT_NAME server)
set_target_properties(chanc_redis PROPERTIES EXPORT_NAME redis)
install(TARGETS chanc chanc_testing chanc_server chanc_redis EXPORT chancTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES framework/include/chanc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY framework/include/chanc/ testing/include/chanc/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/chanc FILES_MATCHING PATTERN "*.h")
install(FILES ${CHANC_GENERATED_INCLUDE_DIR}/chanc/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/chanc)

set(CHANC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/chanc)
install(EXPORT chancTargets NAMESPACE chanc:: DESTINATION ${CHANC_CMAKE_DIR})
configure_package_config_file(cmake/chancConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/chancConfig.cmake
  INSTALL_DESTINATION ${CHANC_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/chancConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/chancConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/chancConfigVersion.cmake
  DESTINATION ${CHANC_CMAKE_DIR})

# pkg-config files find the prefix from their own location (${pcfiledir}),
# so an install made with `cmake --install --prefix P`, or moved after, works
# (an absolute CMAKE_INSTALL_LIBDIR / INCLUDEDIR is written as it is).
set(CHANC_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CHANC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _chanc_up "/p/${CHANC_PC_DIR}" "/p") # ../.. for lib/pkgconfig
  string(REGEX REPLACE "/$" "" _chanc_up "${_chanc_up}")
  set(CHANC_PC_PREFIX "\${pcfiledir}/${_chanc_up}")
endif()
foreach(_chanc_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_chanc_dir}}")
    set(CHANC_PC_${_chanc_dir} "${CMAKE_INSTALL_${_chanc_dir}}")
  else()
    set(CHANC_PC_${_chanc_dir} "\${prefix}/${CMAKE_INSTALL_${_chanc_dir}}")
  endif()
endforeach()
# hiredis is libchanc_redis's private dependency: a shared library carries
# it itself (Requires.private, for `pkg-config --static` only); a static
# libchanc_redis.a needs it on every link line (Requires).
get_target_property(_chanc_type chanc_redis TYPE)
if(_chanc_type STREQUAL "STATIC_LIBRARY")
  set(CHANC_PC_REDIS_REQUIRES ", hiredis >= 0.14")
  set(CHANC_PC_REDIS_REQUIRES_PRIVATE_LINE "")
else()
  set(CHANC_PC_REDIS_REQUIRES "")
  set(CHANC_PC_REDIS_REQUIRES_PRIVATE_LINE "\nRequires.private: hiredis >= 0.14")
endif()
foreach(pc chanc chanc-testing chanc-redis)
  configure_file(cmake/${pc}.pc.in ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc DESTINATION ${CHANC_PC_DIR})
endforeach()
