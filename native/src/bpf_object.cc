// BpfObject: one libbpf object — open, configure, load, attach program by program, maps, ring buffer.
//
// Attaching is per program so that a missing hook (no kprobes, ip_vs not loaded) costs only that program.
// The ring buffer is read on the Node event loop: libuv watches ring_buffer__epoll_fd() and each wake-up drains
// the buffer into one JS Buffer of length-prefixed records — no thread, no polling, one JS call per batch.
#include "addon.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "vipguard.h"

static_assert(sizeof(struct vg_event) == VG_EVENT_SIZE, "vg_event layout changed: update VG_EVENT_SIZE and events.ts");

namespace {

// libbpf reports through a global print callback. Keep its recent output so errors can carry the verifier's
// or the attach path's own explanation. The addon runs on the JS thread only.
std::string g_libbpf_log;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char buf[4096];
	int n = vsnprintf(buf, sizeof(buf), fmt, args);
	if (n > 0)
		g_libbpf_log.append(buf, std::min<size_t>(n, sizeof(buf) - 1));
	if (g_libbpf_log.size() > (256 << 10))
		g_libbpf_log.erase(0, g_libbpf_log.size() - (128 << 10));
	return 0;
}

std::string TakeLog()
{
	std::string s;
	s.swap(g_libbpf_log);
	return s;
}

// The last `lines` lines of a log, for error messages.
std::string Tail(const std::string &s, int lines)
{
	size_t pos = s.size();
	while (lines-- > 0 && pos > 0) {
		size_t nl = s.rfind('\n', pos - 1);
		if (nl == std::string::npos) {
			pos = 0;
			break;
		}
		pos = nl;
	}
	return s.substr(pos == 0 ? 0 : pos + 1);
}

[[noreturn]] void ThrowUsage(Napi::Env env, const std::string &msg)
{
	throw Napi::TypeError::New(env, msg);
}

[[noreturn]] void ThrowLibbpf(Napi::Env env, const std::string &what, int err, const std::string &log)
{
	if (err < 0)
		err = -err;
	std::string msg = what + ": " + std::strerror(err);
	std::string tail = Tail(log, 12);
	Napi::Error e = Napi::Error::New(env, msg);
	e.Set("errno", Napi::Number::New(env, err));
	e.Set("log", Napi::String::New(env, log));
	if (!tail.empty())
		e.Set("logTail", Napi::String::New(env, tail));
	throw e;
}

std::string ProgTypeName(enum bpf_prog_type t)
{
	const char *s = libbpf_bpf_prog_type_str(t);
	return s ? s : "unknown";
}

class BpfObject;

struct RingReader {
	BpfObject *owner = nullptr;
	struct ring_buffer *rb = nullptr;
	uv_poll_t *poll = nullptr;
	Napi::FunctionReference callback;
	std::vector<uint8_t> batch;
	uint64_t batches = 0;
	uint64_t records = 0;
};

class BpfObject : public Napi::ObjectWrap<BpfObject> {
public:
	static Napi::Function Define(Napi::Env env)
	{
		return DefineClass(env, "BpfObject",
				   {
					   InstanceMethod<&BpfObject::Programs>("programs"),
					   InstanceMethod<&BpfObject::Maps>("maps"),
					   InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
					   InstanceMethod<&BpfObject::SetGlobal>("setGlobal"),
					   InstanceMethod<&BpfObject::ReadGlobal>("readGlobal"),
					   InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
					   InstanceMethod<&BpfObject::Load>("load"),
					   InstanceMethod<&BpfObject::Attach>("attach"),
					   InstanceMethod<&BpfObject::Detach>("detach"),
					   InstanceMethod<&BpfObject::MapUpdate>("mapUpdate"),
					   InstanceMethod<&BpfObject::MapLookup>("mapLookup"),
					   InstanceMethod<&BpfObject::MapDelete>("mapDelete"),
					   InstanceMethod<&BpfObject::MapKeys>("mapKeys"),
					   InstanceMethod<&BpfObject::PercpuSums>("percpuSums"),
					   InstanceMethod<&BpfObject::OpenRingBuffer>("openRingBuffer"),
					   InstanceMethod<&BpfObject::ConsumeRingBuffer>("consumeRingBuffer"),
					   InstanceMethod<&BpfObject::Close>("close"),
				   });
	}

	BpfObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfObject>(info)
	{
		Napi::Env env = info.Env();
		if (info.Length() < 1 || !info[0].IsString())
			ThrowUsage(env, "new BpfObject(path): expected the path of a BPF ELF object as a string");
		std::string path = info[0].As<Napi::String>();
		TakeLog();
		// libbpf < 1.3 fails every CO-RE relocation whose type is not in vmlinux when it may not list module BTFs
		// (BPF_BTF_GET_NEXT_ID needs CAP_SYS_ADMIN); 1.3 skips them instead ("libbpf: skip modules BTF loading
		// when CAP_SYS_ADMIN is missing"). Do the same for Debian's 1.1: without that privilege, relocate against
		// vmlinux alone, so the fallbacks of core_fixes.bpf.h apply and CAP_BPF + CAP_PERFMON are enough.
		LIBBPF_OPTS(bpf_object_open_opts, opts);
		__u32 first_btf = 0;
		if (bpf_btf_get_next_id(0, &first_btf) && errno == EPERM)
			opts.btf_custom_path = "/sys/kernel/btf/vmlinux";
		obj_ = bpf_object__open_file(path.c_str(), &opts);
		int err = libbpf_get_error(obj_);
		if (err) {
			obj_ = nullptr;
			ThrowLibbpf(env, "opening BPF object " + path, err, TakeLog());
		}
		path_ = path;
		all_.insert(this);
	}

	~BpfObject() override { Destroy(); }

	// Called on close(), on garbage collection and when the Node environment shuts down.
	void Destroy()
	{
		all_.erase(this);
		for (auto &r : rings_)
			CloseRing(r.get());
		rings_.clear();
		for (auto &kv : links_)
			bpf_link__destroy(kv.second);
		links_.clear();
		if (obj_)
			bpf_object__close(obj_);
		obj_ = nullptr;
	}

	static void DestroyAll()
	{
		std::set<BpfObject *> copy = all_;
		for (BpfObject *o : copy)
			o->Destroy();
	}

private:
	static inline std::set<BpfObject *> all_;

	struct bpf_object *obj_ = nullptr;
	std::string path_;
	bool loaded_ = false;
	std::map<std::string, struct bpf_link *> links_;
	std::vector<std::unique_ptr<RingReader>> rings_;

	void CheckOpen(Napi::Env env, const char *method)
	{
		if (!obj_)
			throw Napi::Error::New(env, std::string("BpfObject.") + method + ": the object is closed");
	}

	void CheckLoaded(Napi::Env env, const char *method, bool want)
	{
		CheckOpen(env, method);
		if (loaded_ != want)
			throw Napi::Error::New(env, std::string("BpfObject.") + method +
							    (want ? ": call load() first" : ": only possible before load()"));
	}

	struct bpf_program *Prog(Napi::Env env, const Napi::Value &v, const char *usage)
	{
		if (!v.IsString())
			ThrowUsage(env, usage);
		std::string name = v.As<Napi::String>();
		struct bpf_program *p = bpf_object__find_program_by_name(obj_, name.c_str());
		if (!p)
			throw Napi::Error::New(env, "no program named '" + name + "' in " + path_);
		return p;
	}

	struct bpf_map *Map(Napi::Env env, const Napi::Value &v, const char *usage)
	{
		if (!v.IsString())
			ThrowUsage(env, usage);
		std::string name = v.As<Napi::String>();
		struct bpf_map *m = bpf_object__find_map_by_name(obj_, name.c_str());
		if (!m)
			throw Napi::Error::New(env, "no map named '" + name + "' in " + path_);
		return m;
	}

	static Napi::Buffer<uint8_t> BufferArg(Napi::Env env, const Napi::Value &v, size_t want, const char *usage,
					       const char *what)
	{
		if (!v.IsBuffer())
			ThrowUsage(env, usage);
		auto b = v.As<Napi::Buffer<uint8_t>>();
		if (want && b.Length() != want)
			throw Napi::RangeError::New(env, std::string(usage) + ": " + what + " must be " +
								 std::to_string(want) + " bytes, got " +
								 std::to_string(b.Length()));
		return b;
	}

	Napi::Value Programs(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckOpen(env, "programs");
		Napi::Array out = Napi::Array::New(env);
		struct bpf_program *p;
		uint32_t i = 0;
		bpf_object__for_each_program(p, obj_)
		{
			Napi::Object o = Napi::Object::New(env);
			std::string name = bpf_program__name(p);
			o.Set("name", name);
			o.Set("section", bpf_program__section_name(p));
			o.Set("type", ProgTypeName(bpf_program__type(p)));
			o.Set("autoload", bpf_program__autoload(p));
			o.Set("attached", links_.count(name) > 0);
			out.Set(i++, o);
		}
		return out;
	}

	Napi::Value Maps(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckOpen(env, "maps");
		Napi::Array out = Napi::Array::New(env);
		struct bpf_map *m;
		uint32_t i = 0;
		bpf_object__for_each_map(m, obj_)
		{
			Napi::Object o = Napi::Object::New(env);
			o.Set("name", bpf_map__name(m));
			const char *t = libbpf_bpf_map_type_str(bpf_map__type(m));
			o.Set("type", t ? t : "unknown");
			o.Set("keySize", bpf_map__key_size(m));
			o.Set("valueSize", bpf_map__value_size(m));
			o.Set("maxEntries", bpf_map__max_entries(m));
			out.Set(i++, o);
		}
		return out;
	}

	Napi::Value SetAutoload(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "setAutoload(program: string, autoload: boolean)";
		CheckLoaded(env, "setAutoload", false);
		struct bpf_program *p = Prog(env, info[0], usage);
		if (!info[1].IsBoolean())
			ThrowUsage(env, usage);
		int err = bpf_program__set_autoload(p, info[1].As<Napi::Boolean>());
		if (err)
			ThrowErrno(env, "setting autoload of " + std::string(bpf_program__name(p)), err);
		return env.Undefined();
	}

	struct GlobalVar {
		struct bpf_map *map;
		uint32_t offset;
		uint32_t size;
	};

	// Finds a global variable (const volatile in .rodata, or .data/.bss) by name in the object's BTF, so that
	// userspace needs no generated skeleton.
	GlobalVar FindGlobal(Napi::Env env, const std::string &name, const char *method)
	{
		struct btf *btf = bpf_object__btf(obj_);
		if (!btf)
			throw Napi::Error::New(env, std::string(method) + ": " + path_ + " has no BTF (compile with -g)");
		struct bpf_map *m;
		bpf_object__for_each_map(m, obj_)
		{
			if (!bpf_map__is_internal(m))
				continue;
			// Internal maps are named "<obj>.rodata"; their BTF datasec is ".rodata".
			const char *dot = strchr(bpf_map__name(m), '.');
			if (!dot)
				continue;
			int sec_id = btf__find_by_name_kind(btf, dot, BTF_KIND_DATASEC);
			if (sec_id < 0)
				continue;
			const struct btf_type *sec = btf__type_by_id(btf, sec_id);
			const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
			for (int i = 0; i < btf_vlen(sec); i++, vs++) {
				const struct btf_type *var = btf__type_by_id(btf, vs->type);
				if (name == btf__name_by_offset(btf, var->name_off))
					return {m, vs->offset, vs->size};
			}
		}
		throw Napi::Error::New(env, std::string(method) + ": no global variable '" + name + "' in " + path_);
	}

	Napi::Value SetGlobal(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "setGlobal(name: string, value: Buffer)";
		CheckLoaded(env, "setGlobal", false);
		if (!info[0].IsString())
			ThrowUsage(env, usage);
		std::string name = info[0].As<Napi::String>();
		auto value = BufferArg(env, info[1], 0, usage, "value");
		GlobalVar g = FindGlobal(env, name, "setGlobal");
		if (value.Length() != g.size)
			throw Napi::RangeError::New(env, "setGlobal('" + name + "'): the variable is " + std::to_string(g.size) +
								 " bytes, got " + std::to_string(value.Length()));
		size_t sz = 0;
		const void *cur = bpf_map__initial_value(g.map, &sz);
		if (!cur || g.offset + g.size > sz)
			throw Napi::Error::New(env, "setGlobal('" + name + "'): no initial value for " + bpf_map__name(g.map));
		std::vector<uint8_t> data(static_cast<const uint8_t *>(cur), static_cast<const uint8_t *>(cur) + sz);
		memcpy(data.data() + g.offset, value.Data(), g.size);
		int err = bpf_map__set_initial_value(g.map, data.data(), sz);
		if (err)
			ThrowErrno(env, "setGlobal('" + name + "')", err);
		return env.Undefined();
	}

	// Reads a .data/.bss global of the loaded object, as the kernel has it now.
	Napi::Value ReadGlobal(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckLoaded(env, "readGlobal", true);
		if (!info[0].IsString())
			ThrowUsage(env, "readGlobal(name: string)");
		std::string name = info[0].As<Napi::String>();
		GlobalVar g = FindGlobal(env, name, "readGlobal");
		std::vector<uint8_t> value(bpf_map__value_size(g.map));
		uint32_t zero = 0;
		if (bpf_map_lookup_elem(bpf_map__fd(g.map), &zero, value.data()))
			ThrowErrno(env, "readGlobal('" + name + "')", errno);
		if (g.offset + g.size > value.size())
			throw Napi::Error::New(env, "readGlobal('" + name + "'): outside its section");
		return Napi::Buffer<uint8_t>::Copy(env, value.data() + g.offset, g.size);
	}

	Napi::Value SetMapMaxEntries(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "setMapMaxEntries(map: string, maxEntries: number)";
		CheckLoaded(env, "setMapMaxEntries", false);
		struct bpf_map *m = Map(env, info[0], usage);
		if (!info[1].IsNumber())
			ThrowUsage(env, usage);
		int err = bpf_map__set_max_entries(m, info[1].As<Napi::Number>().Uint32Value());
		if (err)
			ThrowErrno(env, "setting max_entries of map " + std::string(bpf_map__name(m)), err);
		return env.Undefined();
	}

	Napi::Value Load(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckLoaded(env, "load", false);
		TakeLog();
		int err = bpf_object__load(obj_);
		std::string log = TakeLog();
		// libbpf parsed the kernel's BTF (several MB) to relocate and verify, and has freed it: hand the freed heap
		// back to the system, or the process keeps it as resident memory for its whole life.
		malloc_trim(0);
		if (err)
			ThrowLibbpf(env, "loading BPF object " + path_, err, log);
		loaded_ = true;
		return env.Undefined();
	}

	// attach(program, { cgroup?: string, symbols?: string[] }): auto-attach by section (tp_btf/, fentry/, kprobe/, …),
	// to a cgroup, or — a kprobe.multi program — to the named kernel functions. Named, because libbpf resolves a
	// kprobe.multi section's pattern through /proc/kallsyms, whose addresses read as 0 without CAP_SYSLOG; given
	// names, the kernel resolves them itself (BPF_LINK_CREATE, kprobe_multi.syms).
	Napi::Value Attach(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "attach(program: string, options?: { cgroup?: string, symbols?: string[] })";
		CheckLoaded(env, "attach", true);
		struct bpf_program *p = Prog(env, info[0], usage);
		std::string name = bpf_program__name(p);
		if (links_.count(name))
			return env.Undefined();
		std::string cgroup;
		std::vector<std::string> symbols;
		if (info.Length() > 1 && !info[1].IsUndefined()) {
			if (!info[1].IsObject())
				ThrowUsage(env, usage);
			Napi::Value c = info[1].As<Napi::Object>().Get("cgroup");
			if (!c.IsUndefined()) {
				if (!c.IsString())
					ThrowUsage(env, usage);
				cgroup = c.As<Napi::String>();
			}
			Napi::Value syms = info[1].As<Napi::Object>().Get("symbols");
			if (!syms.IsUndefined()) {
				if (!syms.IsArray() || !cgroup.empty())
					ThrowUsage(env, usage);
				Napi::Array a = syms.As<Napi::Array>();
				for (uint32_t i = 0; i < a.Length(); i++) {
					Napi::Value v = a.Get(i);
					if (!v.IsString())
						ThrowUsage(env, usage);
					symbols.push_back(v.As<Napi::String>());
				}
				if (symbols.empty())
					ThrowUsage(env, usage);
			}
		}
		TakeLog();
		struct bpf_link *link;
		if (!symbols.empty()) {
			std::vector<const char *> names;
			for (const auto &sym : symbols)
				names.push_back(sym.c_str());
			LIBBPF_OPTS(bpf_kprobe_multi_opts, opts, .syms = names.data(), .cnt = names.size());
			link = bpf_program__attach_kprobe_multi_opts(p, nullptr, &opts);
		} else if (!cgroup.empty()) {
			int fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				ThrowErrno(env, "attaching " + name + ": opening cgroup " + cgroup, errno);
			link = bpf_program__attach_cgroup(p, fd);
			int saved = errno;
			close(fd);
			errno = saved;
		} else {
			link = bpf_program__attach(p);
		}
		int err = libbpf_get_error(link);
		if (err)
			ThrowLibbpf(env, "attaching " + name + " (" + bpf_program__section_name(p) + ")", err, TakeLog());
		links_[name] = link;
		return env.Undefined();
	}

	Napi::Value Detach(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckOpen(env, "detach");
		if (!info[0].IsString())
			ThrowUsage(env, "detach(program: string)");
		std::string name = info[0].As<Napi::String>();
		auto it = links_.find(name);
		if (it == links_.end())
			return Napi::Boolean::New(env, false);
		bpf_link__destroy(it->second);
		links_.erase(it);
		return Napi::Boolean::New(env, true);
	}

	Napi::Value MapUpdate(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number)";
		CheckLoaded(env, "mapUpdate", true);
		struct bpf_map *m = Map(env, info[0], usage);
		auto key = BufferArg(env, info[1], bpf_map__key_size(m), usage, "key");
		auto val = BufferArg(env, info[2], bpf_map__value_size(m), usage, "value");
		uint64_t flags = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 0;
		if (bpf_map_update_elem(bpf_map__fd(m), key.Data(), val.Data(), flags))
			ThrowErrno(env, "updating map " + std::string(bpf_map__name(m)), errno);
		return env.Undefined();
	}

	Napi::Value MapLookup(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "mapLookup(map: string, key: Buffer)";
		CheckLoaded(env, "mapLookup", true);
		struct bpf_map *m = Map(env, info[0], usage);
		auto key = BufferArg(env, info[1], bpf_map__key_size(m), usage, "key");
		std::vector<uint8_t> val(bpf_map__value_size(m));
		if (bpf_map_lookup_elem(bpf_map__fd(m), key.Data(), val.data())) {
			if (errno == ENOENT)
				return env.Null();
			ThrowErrno(env, "looking up map " + std::string(bpf_map__name(m)), errno);
		}
		return Napi::Buffer<uint8_t>::Copy(env, val.data(), val.size());
	}

	Napi::Value MapDelete(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "mapDelete(map: string, key: Buffer)";
		CheckLoaded(env, "mapDelete", true);
		struct bpf_map *m = Map(env, info[0], usage);
		auto key = BufferArg(env, info[1], bpf_map__key_size(m), usage, "key");
		if (bpf_map_delete_elem(bpf_map__fd(m), key.Data())) {
			if (errno == ENOENT)
				return Napi::Boolean::New(env, false);
			ThrowErrno(env, "deleting from map " + std::string(bpf_map__name(m)), errno);
		}
		return Napi::Boolean::New(env, true);
	}

	Napi::Value MapKeys(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "mapKeys(map: string)";
		CheckLoaded(env, "mapKeys", true);
		struct bpf_map *m = Map(env, info[0], usage);
		size_t ks = bpf_map__key_size(m);
		std::vector<uint8_t> cur(ks), next(ks);
		Napi::Array out = Napi::Array::New(env);
		uint32_t n = 0;
		void *prev = nullptr;
		// Bounded by max_entries: a map being modified concurrently cannot keep us here forever.
		for (uint32_t guard = 0; guard <= bpf_map__max_entries(m); guard++) {
			if (bpf_map_get_next_key(bpf_map__fd(m), prev, next.data())) {
				if (errno == ENOENT)
					break;
				ThrowErrno(env, "iterating map " + std::string(bpf_map__name(m)), errno);
			}
			out.Set(n++, Napi::Buffer<uint8_t>::Copy(env, next.data(), ks));
			cur.swap(next);
			prev = cur.data();
		}
		return out;
	}

	// percpuSums(map, count): for a per-CPU array of u64, the sum over CPUs of entries 0..count-1 (BigInts).
	Napi::Value PercpuSums(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "percpuSums(map: string, count: number)";
		CheckLoaded(env, "percpuSums", true);
		struct bpf_map *m = Map(env, info[0], usage);
		if (!info[1].IsNumber())
			ThrowUsage(env, usage);
		if (bpf_map__type(m) != BPF_MAP_TYPE_PERCPU_ARRAY || bpf_map__value_size(m) != 8)
			throw Napi::Error::New(env, std::string("percpuSums: map ") + bpf_map__name(m) +
							    " is not a per-CPU array of u64");
		uint32_t count = std::min(info[1].As<Napi::Number>().Uint32Value(), bpf_map__max_entries(m));
		int ncpu = libbpf_num_possible_cpus();
		if (ncpu <= 0)
			ThrowErrno(env, "counting possible CPUs", ncpu);
		std::vector<uint64_t> vals(ncpu);
		Napi::Array out = Napi::Array::New(env, count);
		for (uint32_t i = 0; i < count; i++) {
			if (bpf_map_lookup_elem(bpf_map__fd(m), &i, vals.data()))
				ThrowErrno(env, "reading per-CPU map " + std::string(bpf_map__name(m)), errno);
			uint64_t sum = 0;
			for (uint64_t v : vals)
				sum += v;
			out.Set(i, Napi::BigInt::New(env, sum));
		}
		return out;
	}

	static int OnSample(void *ctx, void *data, size_t size)
	{
		auto *r = static_cast<RingReader *>(ctx);
		uint32_t len = size;
		const uint8_t *p = reinterpret_cast<const uint8_t *>(&len);
		r->batch.insert(r->batch.end(), p, p + 4);
		r->batch.insert(r->batch.end(), static_cast<uint8_t *>(data), static_cast<uint8_t *>(data) + size);
		r->records++;
		return 0;
	}

	// Drains one ring buffer and hands JS the batch: [u32 length][record]… (little-endian length).
	static int Drain(Napi::Env env, RingReader *r)
	{
		r->batch.clear();
		int n = ring_buffer__consume(r->rb);
		if (n < 0)
			return n;
		if (r->batch.empty())
			return 0;
		r->batches++;
		Napi::HandleScope scope(env);
		auto buf = Napi::Buffer<uint8_t>::Copy(env, r->batch.data(), r->batch.size());
		r->callback.MakeCallback(env.Global(), {buf});
		return n;
	}

	static void OnPoll(uv_poll_t *handle, int status, int events)
	{
		auto *r = static_cast<RingReader *>(handle->data);
		if (!r || !r->rb)
			return;
		Napi::Env env = r->callback.Env();
		try {
			Drain(env, r);
		} catch (const Napi::Error &e) {
			// An exception thrown by the JS callback: report it as uncaught, like any event-loop callback.
			napi_fatal_exception(env, e.Value());
		}
	}

	void CloseRing(RingReader *r)
	{
		if (r->poll) {
			uv_poll_stop(r->poll);
			r->poll->data = nullptr;
			uv_close(reinterpret_cast<uv_handle_t *>(r->poll),
				 [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
			r->poll = nullptr;
		}
		if (r->rb)
			ring_buffer__free(r->rb);
		r->rb = nullptr;
		r->callback.Reset();
	}

	// openRingBuffer(map, onBatch(batch: Buffer)): starts watching; returns the reader's index.
	Napi::Value OpenRingBuffer(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const char *usage = "openRingBuffer(map: string, onBatch: (batch: Buffer) => void)";
		CheckLoaded(env, "openRingBuffer", true);
		struct bpf_map *m = Map(env, info[0], usage);
		if (!info[1].IsFunction())
			ThrowUsage(env, usage);
		if (bpf_map__type(m) != BPF_MAP_TYPE_RINGBUF)
			throw Napi::Error::New(env, std::string("openRingBuffer: map ") + bpf_map__name(m) +
							    " is not a ring buffer");
		auto r = std::make_unique<RingReader>();
		r->owner = this;
		r->callback = Napi::Persistent(info[1].As<Napi::Function>());
		r->rb = ring_buffer__new(bpf_map__fd(m), OnSample, r.get(), nullptr);
		int err = libbpf_get_error(r->rb);
		if (err) {
			r->rb = nullptr;
			ThrowErrno(env, "opening ring buffer " + std::string(bpf_map__name(m)), err);
		}
		uv_loop_t *loop = nullptr;
		napi_get_uv_event_loop(env, &loop);
		r->poll = new uv_poll_t;
		r->poll->data = r.get();
		int rc = uv_poll_init(loop, r->poll, ring_buffer__epoll_fd(r->rb));
		if (rc == 0)
			rc = uv_poll_start(r->poll, UV_READABLE, OnPoll);
		if (rc) {
			CloseRing(r.get());
			throw Napi::Error::New(env, std::string("watching ring buffer: ") + uv_strerror(rc));
		}
		rings_.push_back(std::move(r));
		return Napi::Number::New(env, rings_.size() - 1);
	}

	// consumeRingBuffer(index?): drain now (e.g. before close, or in a test waiting for events).
	Napi::Value ConsumeRingBuffer(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		CheckOpen(env, "consumeRingBuffer");
		int total = 0;
		for (auto &r : rings_) {
			if (!r->rb)
				continue;
			int n = Drain(env, r.get());
			if (n < 0)
				ThrowErrno(env, "consuming ring buffer", n);
			total += n;
		}
		return Napi::Number::New(env, total);
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		Destroy();
		return info.Env().Undefined();
	}
};

} // namespace

Napi::Object InitBpfObject(Napi::Env env, Napi::Object exports)
{
	libbpf_set_print(LibbpfPrint);
	exports.Set("BpfObject", BpfObject::Define(env));
	// Links and ring buffers go with the environment: detach on process exit even without close().
	napi_add_env_cleanup_hook(env, [](void *) { BpfObject::DestroyAll(); }, nullptr);
	return exports;
}
