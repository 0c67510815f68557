# MtlsPackage.cmake — the Debian package, built by CPack's DEB generator from the install rules
# of cmake/MtlsInstall.cmake (one build system, one set of install rules: what `cmake --install`
# puts on a host is what the .deb holds). Why CPack and not debian/ + debhelper, the maintainer
# scripts and lintian's verdict: docs/packaging.md.
#
#   cmake --build --preset default --target deb     -> build/default/pkg/mtls-agent_<v>-1_<arch>.deb
#   scripts/package.sh                               the same, configuring and building what it needs

if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "mtls-agent: CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}; the .deb needs /usr "
                 "(the presets' default), the 'deb' target refuses to build otherwise")
endif()

set(MTLS_PACKAGING_DIR "${PROJECT_SOURCE_DIR}/packaging/deb")

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "mtls-agent")
set(CPACK_PACKAGE_VENDOR "mtls-agent maintainers")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "mtls-agent maintainers <maintainers@users.noreply.r-seed-eb471569.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mutual-TLS client identity on a PKCS#11 token, loopback proxy")
# Absolute destinations (/etc, /lib/systemd/system) go into the package tree, not the host.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_INSTALL_PREFIX "/usr")
# Binaries as Debian ships them (lintian: unstripped-binary-or-object).
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME "DEB-DEFAULT")  # mtls-agent_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE "${MTLS_DEB_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Library dependencies come from dpkg-shlibdeps; these are what the maintainer scripts call:
# systemd-sysusers and systemd-tmpfiles (systemd), deb-systemd-helper (init-system-helpers).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd, init-system-helpers (>= 1.54)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "softhsm2, opensc, libtpm2-pkcs11-1")
# The extended description (CPack puts the summary above it as the synopsis).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "mtls-agent keeps a host's private keys on a PKCS#11 token (an HSM, a TPM, or
SoftHSM2), enrolls and renews its client certificate over EST (RFC 7030),
obtains OAuth 2.0 certificate-bound access tokens (RFC 8705), and forwards
local plain-HTTP calls from a loopback proxy to partner APIs over mutual TLS.
.
This package holds the daemon, mtls-agentctl, the hardened systemd unit, the
sysusers and tmpfiles configuration and a documented sample configuration.")

configure_file(${MTLS_PACKAGING_DIR}/conffiles.in ${PROJECT_BINARY_DIR}/packaging/deb/conffiles @ONLY)
foreach(script postinst prerm postrm)
  configure_file(${MTLS_PACKAGING_DIR}/${script} ${PROJECT_BINARY_DIR}/packaging/deb/${script}
                 COPYONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_BINARY_DIR}/packaging/deb/conffiles;${PROJECT_BINARY_DIR}/packaging/deb/postinst;${PROJECT_BINARY_DIR}/packaging/deb/prerm;${PROJECT_BINARY_DIR}/packaging/deb/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)

# `--target deb`: build only what the package holds, then CPack (the built-in `package` target
# would build everything first, tests and benchmarks included).
add_custom_target(deb
  COMMAND ${CMAKE_COMMAND} -E echo "mtls-agent: building the .deb in ${PROJECT_BINARY_DIR}/pkg"
  COMMAND test "${CMAKE_INSTALL_PREFIX}" = "/usr"
  COMMAND ${CMAKE_CPACK_COMMAND} -G DEB --config ${PROJECT_BINARY_DIR}/CPackConfig.cmake
          -B ${PROJECT_BINARY_DIR}/pkg
  WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
  USES_TERMINAL VERBATIM)
add_dependencies(deb mtls-agent mtls-agentctl mtls_docs)
