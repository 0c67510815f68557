# agent-toml.sh — sourced by demo.sh and bench/proxy_bench.sh (not run on its own):
#   agent_toml_base STATE_DIR EST_SERVER TRUST_ANCHOR BASIC_CREDENTIALS_FILE COMMON_NAME
# prints the start of an mtls-agent config for a token made by softhsm-setup.sh (reads the
# MTLS_PKCS11_MODULE / MTLS_PKCS11_TOKEN_URI / MTLS_PKCS11_PIN_FILE it printed): [agent],
# [pkcs11], [key] (EC P-256) and [est] up to common_name. The output ends inside [est], so
# the caller may append more [est] keys before its next table.
agent_toml_base() {
  cat <<TOML
[agent]
state_dir = "$1"

[pkcs11]
module = "$MTLS_PKCS11_MODULE"
token = "$MTLS_PKCS11_TOKEN_URI"
pin_file = "$MTLS_PKCS11_PIN_FILE"

[key]
type = "ec-p256"

[est]
server = "$2"
trust_anchor = "$3"
basic_credentials = "$4"
common_name = "$5"
TOML
}
