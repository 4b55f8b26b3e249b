// weft/io/detail/pickle.hpp: a safe reader for the subset of Python's pickle format that PyTorch
// writes in its archives (data.pkl of torch.save and of torch.jit.save).
//
// A pickle is a program for a stack machine; Python's unpickler imports and calls whatever
// classes the program names. This one never imports or calls anything: it knows a short list of
// opcodes and a short list of globals, builds plain values for them (numbers, strings, tuples,
// lists, dicts, tensor records, objects as attribute dicts), and throws weft::Error naming the
// file, the entry, the byte offset and the opcode or global for anything else.
//
// Allowed globals and what they become:
//   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])
//                                        -> a TensorRecord (storage key, dtype, offset, shape, strides)
//   torch._utils._rebuild_parameter(tensor, requires_grad, hooks)      -> that tensor
//   torch.{Float,Half,BFloat16,Double,Long,Int,Byte,Bool}Storage        -> a storage type marker
//   collections.OrderedDict()                                            -> an empty dict
//   torch.jit._pickle.build_{int,float,double,bool,tensor}list(list), restore_type_tag(x, tag)
//                                        -> the list / x (TorchScript's typed containers)
//   __torch__.<anything>  (TorchScript module classes, created with NEWOBJ and filled with BUILD)
//                                        -> an object: its class name and its attribute dict
// Persistent ids (BINPERSID) must be ('storage', <storage type>, key, location, numel).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/error.hpp"

namespace weft::detail::pickle {

// A storage named by a persistent id: its bytes are the archive entry "<prefix>/data/<key>".
struct StorageRef {
    std::string key;
    DType dtype = DType::f32;
    std::string type_name;  // "HalfStorage", for messages
    std::uint64_t numel = 0;
};

// What _rebuild_tensor_v2 describes: a strided view into a storage (offsets in elements).
struct TensorRecord {
    std::shared_ptr<const StorageRef> storage;
    std::int64_t offset = 0;
    std::vector<std::int64_t> shape;
    std::vector<std::int64_t> strides;
};

struct Value;
using Ptr = std::shared_ptr<Value>;

struct Value {
    enum class Kind { none, boolean, integer, floating, string, bytes, tuple, list, dict, global, storage_type,
                      storage, tensor, object, mark };
    Kind kind = Kind::none;
    bool b = false;
    std::int64_t i = 0;
    double f = 0;
    std::string s;  // string / bytes contents; "module.name" of a global or the class of an object
    std::vector<Ptr> items;                     // tuple, list
    std::vector<std::pair<Ptr, Ptr>> entries;   // dict (insertion order); object attributes
    std::shared_ptr<const StorageRef> storage;  // storage
    std::shared_ptr<const TensorRecord> tensor; // tensor

    const char* kind_name() const {
        switch (kind) {
            case Kind::none: return "None";
            case Kind::boolean: return "bool";
            case Kind::integer: return "int";
            case Kind::floating: return "float";
            case Kind::string: return "str";
            case Kind::bytes: return "bytes";
            case Kind::tuple: return "tuple";
            case Kind::list: return "list";
            case Kind::dict: return "dict";
            case Kind::global: return "global";
            case Kind::storage_type: return "storage type";
            case Kind::storage: return "storage";
            case Kind::tensor: return "tensor";
            case Kind::object: return "object";
            case Kind::mark: return "mark";
        }
        return "?";
    }
};

// Maps a torch storage class name to its element type; false for the ones weft has no type for.
inline bool storage_dtype(std::string_view name, DType& out) {
    static constexpr std::pair<std::string_view, DType> table[] = {
        {"FloatStorage", DType::f32}, {"HalfStorage", DType::f16},  {"BFloat16Storage", DType::bf16},
        {"DoubleStorage", DType::f64}, {"LongStorage", DType::i64}, {"IntStorage", DType::i32},
        {"ByteStorage", DType::u8},   {"BoolStorage", DType::b8},
    };
    for (const auto& [n, d] : table)
        if (n == name) {
            out = d;
            return true;
        }
    return false;
}

class Unpickler {
public:
    // `where` names the file and entry in errors ("PyTorch archive 'm.pt', entry 'm/data.pkl'").
    Unpickler(std::string_view bytes, std::string where) : in_(bytes), where_(std::move(where)) {}

    // Runs the program to STOP and returns the value it leaves.
    Ptr load() {
        while (true) {
            op_at_ = pos_;
            const unsigned char op = byte();
            switch (op) {
                case 0x80: byte(); break;         // PROTO
                case 0x95: take(8); break;        // FRAME: a length hint only
                case '.': {                       // STOP
                    WEFT_CHECK(stack_.size() == 1 && marks_.empty(), where_, ": STOP at byte ", op_at_,
                               " leaves ", stack_.size(), " values on the stack (malformed pickle)");
                    return stack_.back();
                }
                case '(': marks_.push_back(stack_.size()); break;  // MARK
                case '}': push(make(Value::Kind::dict)); break;
                case ']': push(make(Value::Kind::list)); break;
                case ')': push(make(Value::Kind::tuple)); break;
                case 'X': push_string(Value::Kind::string, u32()); break;           // BINUNICODE
                case 0x8c: push_string(Value::Kind::string, byte()); break;         // SHORT_BINUNICODE
                case 0x8d: push_string(Value::Kind::string, u64()); break;          // BINUNICODE8
                case 'B': push_string(Value::Kind::bytes, u32()); break;            // BINBYTES
                case 'C': push_string(Value::Kind::bytes, byte()); break;           // SHORT_BINBYTES
                case 'J': {                                                          // BININT
                    const std::uint32_t v = u32();
                    push_int(std::int32_t(v));
                    break;
                }
                case 'K': push_int(byte()); break;                                   // BININT1
                case 'M': {                                                          // BININT2
                    const std::string_view b = take(2);
                    push_int(std::uint8_t(b[0]) | (std::uint8_t(b[1]) << 8));
                    break;
                }
                case 0x8a: push_int(long1()); break;                                 // LONG1
                case 'G': {                                                          // BINFLOAT, big-endian
                    const std::string_view b = take(8);
                    std::uint64_t bits = 0;
                    for (char c : b) bits = (bits << 8) | std::uint8_t(c);
                    auto v = make(Value::Kind::floating);
                    std::memcpy(&v->f, &bits, 8);
                    push(v);
                    break;
                }
                case 0x88:
                case 0x89: {  // NEWTRUE, NEWFALSE
                    auto v = make(Value::Kind::boolean);
                    v->b = op == 0x88;
                    push(v);
                    break;
                }
                case 'N': push(make(Value::Kind::none)); break;
                case 0x85: push_tuple(1); break;
                case 0x86: push_tuple(2); break;
                case 0x87: push_tuple(3); break;
                case 't': push_tuple(stack_.size() - pop_mark()); break;  // TUPLE
                case 's': {                                               // SETITEM
                    Ptr v = pop(), k = pop();
                    dict_target(top())->entries.emplace_back(std::move(k), std::move(v));
                    break;
                }
                case 'u': {  // SETITEMS
                    const std::size_t m = pop_mark();
                    WEFT_CHECK((stack_.size() - m) % 2 == 0 && m > 0, where_, ": SETITEMS at byte ", op_at_,
                               " with an odd number of values");
                    Value* d = dict_target(stack_[m - 1]);
                    for (std::size_t j = m; j < stack_.size(); j += 2) d->entries.emplace_back(stack_[j], stack_[j + 1]);
                    stack_.resize(m);
                    break;
                }
                case 'a': {  // APPEND
                    Ptr v = pop();
                    list_target(top())->items.push_back(std::move(v));
                    break;
                }
                case 'e': {  // APPENDS
                    const std::size_t m = pop_mark();
                    WEFT_CHECK(m > 0, where_, ": APPENDS at byte ", op_at_, " without a list");
                    Value* l = list_target(stack_[m - 1]);
                    l->items.insert(l->items.end(), stack_.begin() + std::ptrdiff_t(m), stack_.end());
                    stack_.resize(m);
                    break;
                }
                case 'q': put(byte()); break;   // BINPUT
                case 'r': put(u32()); break;    // LONG_BINPUT
                case 0x94: put(memo_.size()); break;  // MEMOIZE
                case 'h': get(byte()); break;   // BINGET
                case 'j': get(u32()); break;    // LONG_BINGET
                case 'c': {                     // GLOBAL "module\nname\n"
                    const std::string module = line(), name = line();
                    push(global(module, name));
                    break;
                }
                case 0x93: {  // STACK_GLOBAL
                    Ptr name = pop(), module = pop();
                    WEFT_CHECK(module->kind == Value::Kind::string && name->kind == Value::Kind::string, where_,
                               ": STACK_GLOBAL at byte ", op_at_, " needs two strings");
                    push(global(module->s, name->s));
                    break;
                }
                case 'R': {  // REDUCE
                    Ptr args = pop(), fn = pop();
                    push(reduce(*fn, *args));
                    break;
                }
                case 0x81: {  // NEWOBJ
                    Ptr args = pop(), cls = pop();
                    WEFT_CHECK(cls->kind == Value::Kind::global && cls->s.starts_with("__torch__."), where_,
                               ": NEWOBJ at byte ", op_at_, " of ", cls->kind == Value::Kind::global ? cls->s : cls->kind_name(),
                               ": only TorchScript classes (__torch__.*) may be created this way");
                    auto obj = make(Value::Kind::object);
                    obj->s = cls->s;
                    push(obj);
                    break;
                }
                case 'b': {  // BUILD
                    Ptr state = pop();
                    Value& obj = *top();
                    if (obj.kind == Value::Kind::object) {
                        WEFT_CHECK(state->kind == Value::Kind::dict, where_, ": BUILD at byte ", op_at_, " gives ",
                                   obj.s, " a ", state->kind_name(), " as its state; weft reads attribute dicts only");
                        obj.entries = state->entries;
                    } else {
                        // A state dict's OrderedDict carries `_metadata` (versions of modules), and a
                        // tensor may carry Python attributes: neither is needed to read tensors.
                        WEFT_CHECK(obj.kind == Value::Kind::dict || obj.kind == Value::Kind::tensor, where_,
                                   ": BUILD at byte ", op_at_, " on a ", obj.kind_name());
                    }
                    break;
                }
                case 'Q': {  // BINPERSID
                    Ptr pid = pop();
                    push(persistent(*pid));
                    break;
                }
                default: {
                    static constexpr char hex[] = "0123456789abcdef";
                    std::string code = "0x";
                    code += hex[op >> 4];
                    code += hex[op & 15];
                    WEFT_FAIL(where_, ": unsupported pickle opcode ", code, " at byte ", op_at_,
                              " (weft reads only the opcodes PyTorch writes; is this a PyTorch archive?)");
                }
            }
        }
    }

private:
    static Ptr make(Value::Kind k) {
        auto v = std::make_shared<Value>();
        v->kind = k;
        return v;
    }

    unsigned char byte() { return std::uint8_t(take(1)[0]); }
    std::string_view take(std::uint64_t n) {
        WEFT_CHECK(n <= in_.size() - pos_, where_, ": the pickle ends inside the operand of the opcode at byte ",
                   op_at_, " (truncated entry)");
        const std::string_view out = in_.substr(pos_, std::size_t(n));
        pos_ += std::size_t(n);
        return out;
    }
    std::uint32_t u32() {
        const std::string_view b = take(4);
        std::uint32_t v = 0;
        for (int k = 3; k >= 0; --k) v = (v << 8) | std::uint8_t(b[std::size_t(k)]);
        return v;
    }
    std::uint64_t u64() {
        const std::uint64_t lo = u32();
        return lo | (std::uint64_t(u32()) << 32);
    }
    std::int64_t long1() {
        const std::size_t n = byte();
        WEFT_CHECK(n <= 8, where_, ": LONG1 at byte ", op_at_, " has ", n, " bytes; weft reads 64-bit integers only");
        const std::string_view b = take(n);
        std::uint64_t v = 0;
        for (std::size_t k = n; k-- > 0;) v = (v << 8) | std::uint8_t(b[k]);
        if (n > 0 && n < 8 && (std::uint8_t(b[n - 1]) & 0x80)) v |= ~std::uint64_t(0) << (8 * n);  // sign-extend
        return std::int64_t(v);
    }
    std::string line() {
        const std::size_t nl = in_.find('\n', pos_);
        WEFT_CHECK(nl != std::string_view::npos, where_, ": GLOBAL at byte ", op_at_, " is not terminated");
        std::string out(in_.substr(pos_, nl - pos_));
        pos_ = nl + 1;
        return out;
    }

    void push(Ptr v) {
        WEFT_CHECK(stack_.size() < max_stack, where_, ": the pickle's stack grows past ", max_stack, " values");
        stack_.push_back(std::move(v));
    }
    void push_int(std::int64_t x) {
        auto v = make(Value::Kind::integer);
        v->i = x;
        push(v);
    }
    void push_string(Value::Kind k, std::uint64_t n) {
        auto v = make(k);
        v->s = std::string(take(n));
        push(v);
    }
    void push_tuple(std::size_t n) {
        WEFT_CHECK(stack_.size() - floor() >= n, where_, ": tuple opcode at byte ", op_at_, " needs ", n,
                   " values but the stack holds fewer (malformed pickle)");
        auto t = make(Value::Kind::tuple);
        t->items.assign(stack_.end() - std::ptrdiff_t(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(t);
    }
    std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
    Ptr pop() {
        WEFT_CHECK(stack_.size() > floor(), where_, ": the opcode at byte ", op_at_,
                   " pops from an empty stack (malformed pickle)");
        Ptr v = std::move(stack_.back());
        stack_.pop_back();
        return v;
    }
    const Ptr& top() const {
        WEFT_CHECK(stack_.size() > floor(), where_, ": the opcode at byte ", op_at_,
                   " needs a value but the stack is empty (malformed pickle)");
        return stack_.back();
    }
    std::size_t pop_mark() {
        WEFT_CHECK(!marks_.empty(), where_, ": the opcode at byte ", op_at_, " needs a MARK (malformed pickle)");
        const std::size_t m = marks_.back();
        marks_.pop_back();
        return m;
    }
    Value* dict_target(const Ptr& p) const {
        WEFT_CHECK(p->kind == Value::Kind::dict, where_, ": SETITEM(S) at byte ", op_at_, " on a ", p->kind_name());
        return p.get();
    }
    Value* list_target(const Ptr& p) const {
        WEFT_CHECK(p->kind == Value::Kind::list, where_, ": APPEND(S) at byte ", op_at_, " on a ", p->kind_name());
        return p.get();
    }
    void put(std::uint64_t idx) {
        WEFT_CHECK(idx < max_memo, where_, ": memo index ", idx, " at byte ", op_at_, " is implausibly large");
        if (memo_.size() <= idx) memo_.resize(std::size_t(idx) + 1);
        memo_[std::size_t(idx)] = top();
    }
    void get(std::uint64_t idx) {
        WEFT_CHECK(idx < memo_.size() && memo_[std::size_t(idx)], where_, ": memo entry ", idx, " read at byte ",
                   op_at_, " was never stored (malformed pickle)");
        push(memo_[std::size_t(idx)]);
    }

    Ptr global(const std::string& module, const std::string& name) {
        const std::string full = module + "." + name;
        auto v = make(Value::Kind::global);
        v->s = full;
        if (module == "torch" && name.ends_with("Storage")) {
            DType d{};
            WEFT_CHECK(storage_dtype(name, d), where_, ": storage class ", full,
                       " has an element type weft does not read (it reads Float, Half, BFloat16, Double, Long, "
                       "Int, Byte and Bool storages)");
            v->kind = Value::Kind::storage_type;
            v->s = name;
            return v;
        }
        static constexpr std::string_view allowed[] = {
            "torch._utils._rebuild_tensor_v2",       "torch._utils._rebuild_parameter",
            "collections.OrderedDict",               "torch.jit._pickle.build_intlist",
            "torch.jit._pickle.build_floatlist",     "torch.jit._pickle.build_doublelist",
            "torch.jit._pickle.build_boollist",      "torch.jit._pickle.build_tensorlist",
            "torch.jit._pickle.restore_type_tag",
        };
        for (std::string_view a : allowed)
            if (a == full) return v;
        if (module == "__torch__" || module.starts_with("__torch__.")) return v;
        WEFT_FAIL(where_, ": the pickle names the global ", full, " (at byte ", op_at_,
                  "), which weft does not allow: it reads tensors, containers and TorchScript modules only, "
                  "and never runs code from a file");
    }

    std::int64_t int_arg(const Value& v, const char* what) const {
        WEFT_CHECK(v.kind == Value::Kind::integer, where_, ": ", what, " at byte ", op_at_, " is a ",
                   v.kind_name(), ", not an int");
        return v.i;
    }
    std::vector<std::int64_t> ints_arg(const Value& v, const char* what) const {
        WEFT_CHECK(v.kind == Value::Kind::tuple || v.kind == Value::Kind::list, where_, ": ", what, " at byte ",
                   op_at_, " is a ", v.kind_name(), ", not a tuple of ints");
        std::vector<std::int64_t> out;
        for (const Ptr& x : v.items) out.push_back(int_arg(*x, what));
        return out;
    }

    Ptr reduce(const Value& fn, const Value& args) {
        WEFT_CHECK(fn.kind == Value::Kind::global, where_, ": REDUCE at byte ", op_at_, " calls a ", fn.kind_name());
        WEFT_CHECK(args.kind == Value::Kind::tuple, where_, ": REDUCE at byte ", op_at_, " of ", fn.s,
                   " has a ", args.kind_name(), " as arguments");
        const auto& a = args.items;
        auto nargs = [&](std::size_t lo, std::size_t hi) {
            WEFT_CHECK(a.size() >= lo && a.size() <= hi, where_, ": ", fn.s, " at byte ", op_at_, " gets ",
                       a.size(), " arguments");
        };
        if (fn.s == "torch._utils._rebuild_tensor_v2") {
            nargs(6, 7);
            WEFT_CHECK(a[0]->kind == Value::Kind::storage, where_, ": _rebuild_tensor_v2 at byte ", op_at_,
                       " gets a ", a[0]->kind_name(), " instead of a storage");
            auto rec = std::make_shared<TensorRecord>();
            rec->storage = a[0]->storage;
            rec->offset = int_arg(*a[1], "a storage offset");
            rec->shape = ints_arg(*a[2], "a tensor size");
            rec->strides = ints_arg(*a[3], "a tensor stride");
            WEFT_CHECK(rec->shape.size() == rec->strides.size(), where_, ": _rebuild_tensor_v2 at byte ", op_at_,
                       " has ", rec->shape.size(), " sizes but ", rec->strides.size(), " strides");
            auto v = make(Value::Kind::tensor);
            v->tensor = std::move(rec);
            return v;
        }
        if (fn.s == "torch._utils._rebuild_parameter") {
            nargs(3, 3);
            WEFT_CHECK(a[0]->kind == Value::Kind::tensor, where_, ": _rebuild_parameter at byte ", op_at_,
                       " gets a ", a[0]->kind_name(), " instead of a tensor");
            return a[0];
        }
        if (fn.s == "collections.OrderedDict") {
            nargs(0, 0);
            return make(Value::Kind::dict);
        }
        if (fn.s.starts_with("torch.jit._pickle.")) {
            nargs(1, 2);
            return a[0];
        }
        WEFT_FAIL(where_, ": REDUCE at byte ", op_at_, " calls ", fn.s,
                  ", which weft does not call (only tensor, parameter and container rebuilders)");
    }

    Ptr persistent(const Value& pid) {
        const char* shape = "('storage', <storage type>, key, location, numel)";
        WEFT_CHECK(pid.kind == Value::Kind::tuple && pid.items.size() == 5 &&
                       pid.items[0]->kind == Value::Kind::string && pid.items[0]->s == "storage",
                   where_, ": persistent id at byte ", op_at_, " is not ", shape);
        const Value& type = *pid.items[1];
        WEFT_CHECK(type.kind == Value::Kind::storage_type, where_, ": persistent id at byte ", op_at_,
                   " names a ", type.kind_name(), " instead of a storage type");
        WEFT_CHECK(pid.items[2]->kind == Value::Kind::string, where_, ": persistent id at byte ", op_at_,
                   ": the storage key is not a string");
        const std::int64_t numel = int_arg(*pid.items[4], "a storage's element count");
        WEFT_CHECK(numel >= 0, where_, ": storage '", pid.items[2]->s, "' has a negative element count ", numel);
        auto ref = std::make_shared<StorageRef>();
        ref->key = pid.items[2]->s;
        storage_dtype(type.s, ref->dtype);
        ref->type_name = type.s;
        ref->numel = std::uint64_t(numel);
        auto v = make(Value::Kind::storage);
        v->storage = std::move(ref);
        return v;
    }

    static constexpr std::size_t max_stack = 1u << 20, max_memo = 1u << 24;

    std::string_view in_;
    std::string where_;
    std::size_t pos_ = 0, op_at_ = 0;
    std::vector<Ptr> stack_;
    std::vector<std::size_t> marks_;
    std::vector<Ptr> memo_;
};

}  // namespace weft::detail::pickle
