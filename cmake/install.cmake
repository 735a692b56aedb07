# Install rules: libraries, headers, a CMake package (find_package(chanc)
# gives chanc::chanc, chanc::testing and chanc::server) and pkg-config files.
include(CMakePackageConfigHelpers)

set_target_properties(chanc_testing PROPERTIES EXPORT_NAME testing)
set_target_properties(chanc_server PROPERTIES EXPORT_NAME server)
install(TARGETS chanc chanc_testing chanc_server EXPORT chancTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES framework/include/chanc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY framework/include/chanc/ testing/include/chanc/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/chanc FILES_MATCHING PATTERN "*.h")

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

foreach(pc chanc chanc-testing)
  configure_file(cmake/${pc}.pc.in ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
