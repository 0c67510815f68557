// Names of CSR attribute and extension types for [est.csr_attributes] and for messages: a
// dotted OID, a name from our small table (LDAP/X.520 types OpenSSL does not know, such as
// macAddress, RFC 2307), or an OpenSSL short or long name ("keyUsage", "serialNumber").
#pragma once

#include <string>
#include <string_view>

namespace mtls::config {

// The dotted OID `name` stands for, or "" when it is neither an OID nor a known name.
std::string csr_attribute_oid(std::string_view name);

// How to show a dotted OID: our table's name, else OpenSSL's short name, else the OID.
std::string csr_attribute_name(std::string_view oid);

// Whether values of this attribute type are IA5String (macAddress); others are UTF8String.
bool csr_attribute_is_ia5(std::string_view oid);

// What is wrong with a value for `oid` (empty when fine): "DER:<hex>" must be hex, text must
// be printable (ASCII for IA5String types), at most 1024 bytes.
std::string csr_attribute_value_problem(std::string_view oid, std::string_view value);

}  // namespace mtls::config
