// systemd's readiness protocol (sd_notify(3)): one datagram, "READY=1" and friends, to the AF_UNIX socket named
// by $NOTIFY_SOCKET — a path, or an abstract name written with a leading '@'. Node has no AF_UNIX datagram
// sockets, so these few lines live here; when to say what is TypeScript's (src/native/notify.ts).
#include "addon.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

// notify(socketName, state) -> undefined; throws with .code on failure
static Napi::Value Notify(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
		throw Napi::TypeError::New(env, "notify(socketName, state): two strings expected");
	std::string name = info[0].As<Napi::String>().Utf8Value();
	std::string state = info[1].As<Napi::String>().Utf8Value();

	struct sockaddr_un addr;
	std::memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (name.size() < 2 || (name[0] != '/' && name[0] != '@') || name.size() >= sizeof(addr.sun_path))
		throw Napi::TypeError::New(env, "notify: the socket name must be an absolute path or @abstract, shorter than " +
						    std::to_string(sizeof(addr.sun_path)) + " bytes, got '" + name + "'");
	std::memcpy(addr.sun_path, name.data(), name.size());
	if (name[0] == '@')
		addr.sun_path[0] = '\0';
	socklen_t len = socklen_t(offsetof(struct sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		ThrowErrno(env, "notify: socket", errno);
	ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr *>(&addr), len);
	int err = errno;
	close(fd);
	if (n < 0)
		ThrowErrno(env, "notify: sendto " + name, err);
	return env.Undefined();
}

Napi::Object InitNotify(Napi::Env env, Napi::Object exports)
{
	exports.Set("notify", Napi::Function::New(env, Notify));
	return exports;
}
