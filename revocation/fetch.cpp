#include "revocation/fetch.hpp"

#include <curl/curl.h>

#include <memory>
#include <mutex>

namespace mtls::revocation {
namespace {

struct CurlEasyFree {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct CurlSlistFree {
    void operator()(curl_slist* s) const noexcept { curl_slist_free_all(s); }
};

struct RevocationSink {
    std::string data;
    std::size_t max = 0;
    bool too_large = false;
};

size_t revocation_write_cb(char* p, size_t size, size_t n, void* user) {
    auto* sink = static_cast<RevocationSink*>(user);
    const size_t len = size * n;
    if (sink->data.size() + len > sink->max) {
        sink->too_large = true;
        return 0;
    }
    sink->data.append(p, len);
    return len;
}

void revocation_curl_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string http_fetch(const std::string& url, const std::string& body,
                       const std::string& content_type, const FetchLimits& limits) {
    revocation_curl_init();
    std::unique_ptr<CURL, CurlEasyFree> easy(curl_easy_init());
    if (!easy) throw FetchError("curl_easy_init failed");
    CURL* e = easy.get();
    RevocationSink sink;
    sink.max = limits.max_bytes;
    std::unique_ptr<curl_slist, CurlSlistFree> headers;
    const long timeout_ms = static_cast<long>(limits.timeout.count());
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(limits.max_bytes));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mtls-agent");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &revocation_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
    if (!content_type.empty()) {
        headers.reset(curl_slist_append(nullptr, ("Content-Type: " + content_type).c_str()));
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    const CURLcode rc = curl_easy_perform(e);
    if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED)
        throw FetchError(url + ": response larger than " + std::to_string(limits.max_bytes) +
                         " bytes");
    if (rc == CURLE_OPERATION_TIMEDOUT)
        throw FetchError(url + ": timed out after " + std::to_string(timeout_ms) + " ms");
    if (rc != CURLE_OK) throw FetchError(url + ": " + curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) throw FetchError(url + ": HTTP status " + std::to_string(status));
    if (sink.data.empty()) throw FetchError(url + ": empty response");
    return std::move(sink.data);
}

}  // namespace mtls::revocation
