#include "addon.h"

#include <cerrno>
#include <cstring>

static const char *ErrnoName(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ESTALE: return "ESTALE";
	case ENOBUFS: return "ENOBUFS";
	case EMSGSIZE: return "EMSGSIZE";
	case EPROTO: return "EPROTO";
	case ENOTSOCK: return "ENOTSOCK";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENOTDIR: return "ENOTDIR";
	case EPIPE: return "EPIPE";
	default: return "EUNKNOWN";
	}
}

void ThrowErrno(Napi::Env env, const std::string &what, int err)
{
	if (err < 0)
		err = -err;
	Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
	e.Set("code", Napi::String::New(env, ErrnoName(err)));
	e.Set("errno", Napi::Number::New(env, err));
	throw e;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	InitBpfObject(env, exports);
	InitNetlink(env, exports);
	InitClock(env, exports);
	InitNotify(env, exports);
	return exports;
}

NODE_API_MODULE(vipguard_native, Init)
