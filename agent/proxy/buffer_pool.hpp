// The 64 KiB buffers request and response bodies stream through, recycled across the
// requests of one proxy. They stay off the session coroutines' frames: a frame holding one
// would be a 64 KiB heap allocation per request (and make glibc consolidate its free lists
// every time). One io_context thread uses a pool: no locking.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace mtls::proxy {

class BufferPool {
  public:
    static constexpr std::size_t kSize = 64 * 1024;

    // One buffer, back to the pool when the lease ends.
    class Lease {
      public:
        Lease(BufferPool& pool, std::unique_ptr<char[]> buf) : pool_(&pool), buf_(std::move(buf)) {}
        Lease(Lease&& o) noexcept = default;
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (buf_) pool_->give_back(std::move(buf_));
        }
        char* data() { return buf_.get(); }
        static constexpr std::size_t size() { return kSize; }

      private:
        BufferPool* pool_;
        std::unique_ptr<char[]> buf_;
    };

    Lease take() {
        if (free_.empty()) return Lease(*this, std::make_unique_for_overwrite<char[]>(kSize));
        auto b = std::move(free_.back());
        free_.pop_back();
        return Lease(*this, std::move(b));
    }

  private:
    void give_back(std::unique_ptr<char[]> b) {
        if (free_.size() < max_free_) free_.push_back(std::move(b));
    }

    static constexpr std::size_t max_free_ = 16;  // unused buffers kept; the rest are freed
    std::vector<std::unique_ptr<char[]>> free_;
};

}  // namespace mtls::proxy
