# MtlsInstall.cmake — where everything goes on `cmake --install` (and in the .deb, which CPack
# builds from these same rules: cmake/MtlsPackage.cmake). Layout and reasons: docs/packaging.md.
#
#   ${bindir}/mtls-agent, mtls-agentctl                 (agent/CMakeLists.txt)
#   /etc/mtls-agent/mtls-agent.toml                      the sample, only if none is there yet
#   ${docdir}/examples/mtls-agent.toml                   the sample, always (compare after upgrades)
#   ${docdir}/examples/systemd/tpm.conf, usb-hsm.conf    drop-ins for a TPM, a USB HSM
#   ${docdir}/README.md, packaging.md, copyright, changelog.Debian.gz
#   ${mandir}/man8/mtls-agent.8.gz, mtls-agentctl.8.gz, ${mandir}/man5/mtls-agent.toml.5.gz
#   ${unitdir}/mtls-agent.service                        generated from systemd/mtls-agent.service.in
#   ${sysusersdir}/mtls-agent.conf, ${tmpfilesdir}/mtls-agent.conf
#   ${datadir}/bash-completion/completions/mtls-agentctl
#   ${datadir}/lintian/overrides/mtls-agent
#
# With CMAKE_INSTALL_PREFIX=/usr (the presets' default) GNUInstallDirs puts sysconfdir at /etc,
# and the systemd directories are the distribution's (pkg-config systemd: /lib/systemd/system,
# /usr/lib/sysusers.d, /usr/lib/tmpfiles.d on Debian 12). Any other prefix keeps everything
# under it (<prefix>/etc, <prefix>/lib/systemd/system …), e.g. for a staging install.

set(MTLS_DEB_RELEASE 1 CACHE STRING "Debian revision of the package (the -N in <version>-N)")

set(MTLS_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/mtls-agent")
set(MTLS_CONFIG_FILE "${MTLS_CONFIG_DIR}/mtls-agent.toml")

set(_mtls_unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
set(_mtls_sysusersdir "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d")
set(_mtls_tmpfilesdir "${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  pkg_check_modules(MTLS_SYSTEMD_PC QUIET systemd)
  if(MTLS_SYSTEMD_PC_FOUND)
    pkg_get_variable(_v systemd systemdsystemunitdir)
    if(_v)
      set(_mtls_unitdir "${_v}")
    endif()
    pkg_get_variable(_v systemd sysusersdir)
    if(_v)
      set(_mtls_sysusersdir "${_v}")
    endif()
    pkg_get_variable(_v systemd tmpfilesdir)
    if(_v)
      set(_mtls_tmpfilesdir "${_v}")
    endif()
  else()
    set(_mtls_unitdir "/lib/systemd/system")  # Debian 12's dpkg-owned unit directory
  endif()
endif()
set(MTLS_SYSTEMD_UNITDIR "${_mtls_unitdir}" CACHE PATH "systemd system unit directory")
set(MTLS_SYSUSERSDIR "${_mtls_sysusersdir}" CACHE PATH "sysusers.d directory")
set(MTLS_TMPFILESDIR "${_mtls_tmpfilesdir}" CACHE PATH "tmpfiles.d directory")

set(MTLS_GEN_DIR "${PROJECT_BINARY_DIR}/install-files")

# Full RELRO for the installed programs (lintian: hardening-no-bindnow; relro is the default).
target_link_options(mtls-agent PRIVATE -Wl,-z,now)
target_link_options(mtls-agentctl PRIVATE -Wl,-z,now)

# --- The unit, with this build's paths ---
configure_file(${PROJECT_SOURCE_DIR}/systemd/mtls-agent.service.in
               ${MTLS_GEN_DIR}/mtls-agent.service @ONLY)
install(FILES ${MTLS_GEN_DIR}/mtls-agent.service DESTINATION ${MTLS_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/mtls-agent.sysusers.conf
        DESTINATION ${MTLS_SYSUSERSDIR} RENAME mtls-agent.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/mtls-agent.tmpfiles.conf
        DESTINATION ${MTLS_TMPFILESDIR} RENAME mtls-agent.conf)

# --- The configuration: never overwrite one that is there ---
# `cmake --install` copies the sample only when there is no mtls-agent.toml yet (an edited
# config survives a second install); the sample is always under ${docdir}/examples. In the
# .deb the file is a dpkg conffile, so dpkg decides on upgrades (packaging/deb/conffiles).
install(CODE "
  set(_dest \"${MTLS_CONFIG_DIR}\")
  if(EXISTS \"\$ENV{DESTDIR}\${_dest}/mtls-agent.toml\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}\${_dest}/mtls-agent.toml (the sample is in ${CMAKE_INSTALL_FULL_DOCDIR}/examples)\")
  else()
    file(INSTALL DESTINATION \"\${_dest}\" TYPE FILE
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
         FILES \"${PROJECT_SOURCE_DIR}/config/mtls-agent.toml\")
  endif()
")
install(FILES ${PROJECT_SOURCE_DIR}/config/mtls-agent.toml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# Drop-ins for a TPM and a USB HSM (docs/packaging.md).
install(FILES ${PROJECT_SOURCE_DIR}/systemd/drop-ins/tpm.conf ${PROJECT_SOURCE_DIR}/systemd/drop-ins/usb-hsm.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/systemd)

# --- Documentation ---
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/packaging.md
              ${PROJECT_SOURCE_DIR}/packaging/deb/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# changelog.Debian: the Debian changelog is the version's source of truth for the package, so
# its newest entry must be this version.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/packaging/deb/changelog)
file(STRINGS ${PROJECT_SOURCE_DIR}/packaging/deb/changelog _mtls_cl_first LIMIT_COUNT 1)
set(MTLS_DEB_VERSION "${PROJECT_VERSION}-${MTLS_DEB_RELEASE}")
if(NOT _mtls_cl_first MATCHES "^mtls-agent \\(${MTLS_DEB_VERSION}\\) ")
  message(FATAL_ERROR "packaging/deb/changelog: the newest entry is '${_mtls_cl_first}', not "
                      "mtls-agent (${MTLS_DEB_VERSION}): add an entry for this version (dch -v)")
endif()

find_program(MTLS_GZIP gzip REQUIRED)
add_custom_command(
  OUTPUT ${MTLS_GEN_DIR}/changelog.Debian.gz
  COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/packaging/deb/changelog
          ${MTLS_GEN_DIR}/changelog.Debian
  COMMAND ${MTLS_GZIP} -9nf ${MTLS_GEN_DIR}/changelog.Debian
  DEPENDS ${PROJECT_SOURCE_DIR}/packaging/deb/changelog
  COMMENT "changelog.Debian.gz" VERBATIM)
set(_mtls_doc_outputs ${MTLS_GEN_DIR}/changelog.Debian.gz)
install(FILES ${MTLS_GEN_DIR}/changelog.Debian.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Man pages, from docs/man/*.scd with scdoc(1), gzip -9n.
find_program(MTLS_SCDOC scdoc)
# The pages' date is the newest changelog entry's (reproducible: not the build's date).
execute_process(COMMAND dpkg-parsechangelog -l ${PROJECT_SOURCE_DIR}/packaging/deb/changelog -STimestamp
                OUTPUT_VARIABLE MTLS_RELEASE_EPOCH OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE _rc ERROR_QUIET)
set(_mtls_scdoc_env "")
if(_rc EQUAL 0 AND MTLS_RELEASE_EPOCH MATCHES "^[0-9]+$")
  set(_mtls_scdoc_env ${CMAKE_COMMAND} -E env SOURCE_DATE_EPOCH=${MTLS_RELEASE_EPOCH})
endif()
option(MTLS_MAN "Build and install the man pages (needs scdoc)" ON)
set(MTLS_MAN_PAGES mtls-agent.8 mtls-agentctl.8 mtls-agent.toml.5)
if(MTLS_MAN AND MTLS_SCDOC)
  foreach(page IN LISTS MTLS_MAN_PAGES)
    string(REGEX MATCH "[0-9]$" section "${page}")
    set(src ${PROJECT_SOURCE_DIR}/docs/man/${page}.scd)
    set(out ${MTLS_GEN_DIR}/man/${page})
    add_custom_command(
      OUTPUT ${out}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${MTLS_GEN_DIR}/man
      COMMAND ${_mtls_scdoc_env} sh -c "\"$1\" < \"$2\" > \"$3\"" sh ${MTLS_SCDOC} ${src} ${out}
      COMMAND ${MTLS_GZIP} -9nf ${out}
      DEPENDS ${src} ${PROJECT_SOURCE_DIR}/packaging/deb/changelog
      COMMENT "man page ${page}" VERBATIM)
    list(APPEND _mtls_doc_outputs ${out}.gz)
    install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
elseif(MTLS_MAN)
  message(WARNING "scdoc not found: no man pages (scripts/deps.sh installs it); the .deb needs them")
endif()
add_custom_target(mtls_docs ALL DEPENDS ${_mtls_doc_outputs})

# --- Shell completion and lintian overrides ---
install(FILES ${PROJECT_SOURCE_DIR}/packaging/completion/mtls-agentctl
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/deb/lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME mtls-agent)
