// weft/nn/state_dict.hpp: a module's tensors by dotted name, and what loading them reported.
//
//   auto sd = model.state_dict();                    // "fc.weight", "fc.bias", "bn.running_mean", ...
//   Tensor<float, 2> w = sd.get<2>("fc.weight");     // a view of the module's weight
//   auto snapshot = sd.clone();                      // element copies, independent of the model
//   auto report = other.load_state_dict(sd, false);  // report.missing / unexpected / mismatched
//
// A StateDict keeps its entries in insertion order (a module inserts them in PyTorch's order:
// its own parameters, its own buffers, then each child in registration order). Each entry holds
// the tensor as one dense row plus its shape, so tensors of every rank share one container;
// get<R>() gives the tensor back at its rank. Inserting a dense tensor keeps a view of it (no
// copy, as torch's state_dict() does); clone() makes the copies.
#pragma once

#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace weft::nn {

namespace detail {

inline std::string shape_str(const std::vector<index_t>& s) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << ']';
    return os.str();
}

template <int R>
std::vector<index_t> shape_vector(const Shape<R>& s) {
    return std::vector<index_t>(s.dims, s.dims + R);
}

}  // namespace detail

template <Element T, Device D = Cpu>
class StateDict {
public:
    struct Entry {
        std::string name;
        std::vector<index_t> shape;
        Tensor<T, 1, D> values;  // dense, row-major, detached from autograd

        int rank() const { return int(shape.size()); }
        index_t numel() const { return values.numel(); }
        std::string shape_string() const { return detail::shape_str(shape); }

        // The tensor at its rank (a view of `values`); throws if R is not its rank.
        template <int R>
        Tensor<T, R, D> as() const {
            WEFT_CHECK(rank() == R, "StateDict: '", name, "' has shape ", shape_string(), " (rank ", rank(),
                       "), asked for rank ", R);
            return values.reshape(Shape<R>::from_array(shape));
        }
    };

    // Adds (or replaces, keeping its place) the entry `name`. A dense tensor is kept as a view.
    template <int R>
    void insert(std::string name, const Tensor<T, R, D>& t) {
        WEFT_CHECK(t.defined(), "StateDict::insert: the tensor '", name, "' is undefined");
        Entry e{name, detail::shape_vector(t.shape()), t.detach().contiguous().reshape(t.numel())};
        if (auto it = index_.find(name); it != index_.end()) {
            entries_[it->second] = std::move(e);
            return;
        }
        index_.emplace(name, entries_.size());
        entries_.push_back(std::move(e));
    }

    bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }

    // The entry `name`; throws naming the key (and a few that exist) when there is none.
    const Entry& at(std::string_view name) const {
        const auto it = index_.find(name);
        if (it == index_.end()) {
            std::ostringstream os;
            std::size_t shown = 0;
            for (const auto& e : entries_) {
                if (shown == 5) {
                    os << ", ...";
                    break;
                }
                os << (shown++ ? ", '" : "'") << e.name << "'";
            }
            WEFT_FAIL("StateDict: no entry '", name, "' (it holds ", entries_.size(), " entries",
                      entries_.empty() ? "" : ": ", os.str(), ")");
        }
        return entries_[it->second];
    }
    const Entry* find(std::string_view name) const {
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &entries_[it->second];
    }

    template <int R>
    Tensor<T, R, D> get(std::string_view name) const {
        return at(name).template as<R>();
    }

    bool erase(std::string_view name) {
        const auto it = index_.find(name);
        if (it == index_.end()) return false;
        entries_.erase(entries_.begin() + std::ptrdiff_t(it->second));
        index_.clear();
        for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
        return true;
    }

    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        out.reserve(entries_.size());
        for (const auto& e : entries_) out.push_back(e.name);
        return out;
    }

    // Element copies of every entry, sharing nothing with this dict or the module it came from.
    StateDict clone() const {
        StateDict out = *this;
        for (auto& e : out.entries_) e.values = e.values.clone();
        return out;
    }

private:
    std::vector<Entry> entries_;
    std::map<std::string, std::size_t, std::less<>> index_;
};

// A key whose tensor does not fit the module's: shapes as lists of extents.
struct MismatchedKey {
    std::string name;
    std::vector<index_t> expected;  // the module's tensor
    std::vector<index_t> got;       // the state dict's (or file's) tensor
};

// What load_state_dict / load_state found: keys the module has and the source lacks (missing),
// keys the source has and the module lacks (unexpected), and keys whose shapes differ.
struct LoadReport {
    std::vector<std::string> missing;
    std::vector<std::string> unexpected;
    std::vector<MismatchedKey> mismatched;

    bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
    explicit operator bool() const { return ok(); }

    // Every problem on one line each ("" when ok).
    std::string message() const {
        std::ostringstream os;
        auto list = [&os](const char* what, const std::vector<std::string>& names) {
            if (names.empty()) return;
            os << names.size() << ' ' << what << (names.size() == 1 ? " key" : " keys") << ":";
            for (const auto& n : names) os << " '" << n << "'";
            os << "\n";
        };
        list("missing", missing);
        list("unexpected", unexpected);
        if (!mismatched.empty()) {
            os << mismatched.size() << (mismatched.size() == 1 ? " shape mismatch" : " shape mismatches") << ":";
            for (const auto& m : mismatched)
                os << " '" << m.name << "' module " << detail::shape_str(m.expected) << " vs "
                   << detail::shape_str(m.got) << ";";
            os << "\n";
        }
        return os.str();
    }
};

}  // namespace weft::nn
