// A netlink datagram socket, nothing more: open, send one request, receive one datagram, close.
// Message framing (nlmsghdr, generic netlink, attributes, acks, dumps) is TypeScript in src/actuator/ipvs/;
// keeping it out of C++ keeps it unit-testable without root or a kernel.
//
// Exports, all synchronous (see src/native/netlink.ts for the types):
//   netlink.open({ protocol, netns? })        -> { fd, portId, extAck, capAck }
//   netlink.send(fd, buffer)                  -> bytes sent
//   netlink.receive(fd, { timeoutMs })        -> Buffer (one datagram from the kernel) | null on timeout
//   netlink.close(fd)
// Synchronous is fine here: the kernel runs a generic netlink request inside sendmsg(), so a reply is already queued
// when send() returns, and dump parts are produced inside recvmsg(). The timeout only guards against a lost reply.
#include "addon.h"

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace {

[[noreturn]] void Usage(Napi::Env env, const std::string &msg)
{
	throw Napi::TypeError::New(env, msg);
}

// Every call takes the fd back from JavaScript; refuse anything that is not a netlink socket so that a stale fd
// number reused by some unrelated file is never written to.
int CheckedFd(const Napi::CallbackInfo &info, const char *usage)
{
	if (info.Length() < 1 || !info[0].IsNumber())
		Usage(info.Env(), std::string(usage) + ": expected a file descriptor number");
	int fd = info[0].As<Napi::Number>().Int32Value();
	int domain = 0;
	socklen_t len = sizeof(domain);
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_NETLINK)
		Usage(info.Env(), std::string(usage) + ": fd " + std::to_string(fd) + " is not an open netlink socket");
	return fd;
}

bool SetFlag(int fd, int opt)
{
	int one = 1;
	return setsockopt(fd, SOL_NETLINK, opt, &one, sizeof(one)) == 0;
}

// Creates the socket inside another network namespace. setns() only moves the calling thread, and the socket keeps
// the namespace it was created in, so we switch, create, and switch straight back.
int SocketInNetns(Napi::Env env, const std::string &path, int protocol)
{
	int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (target < 0)
		ThrowErrno(env, "netlink.open: opening network namespace " + path, errno);
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		int err = errno;
		close(target);
		ThrowErrno(env, "netlink.open: opening /proc/thread-self/ns/net", err);
	}
	if (setns(target, CLONE_NEWNET) != 0) {
		int err = errno;
		close(target);
		close(self);
		ThrowErrno(env, "netlink.open: entering network namespace " + path + " (needs CAP_SYS_ADMIN)", err);
	}
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
	int err = errno;
	// Staying in the wrong namespace would silently redirect every later socket of this thread: not recoverable.
	if (setns(self, CLONE_NEWNET) != 0)
		Napi::Error::Fatal("netlink.open", "could not return the main thread to its own network namespace");
	close(target);
	close(self);
	if (fd < 0)
		ThrowErrno(env, "netlink.open: socket(AF_NETLINK) in " + path, err);
	return fd;
}

Napi::Value Open(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const char *usage = "netlink.open({ protocol, netns? })";
	if (info.Length() < 1 || !info[0].IsObject())
		Usage(env, std::string(usage) + ": expected an options object");
	Napi::Object opts = info[0].As<Napi::Object>();
	Napi::Value proto = opts.Get("protocol");
	if (!proto.IsNumber())
		Usage(env, std::string(usage) + ": protocol must be a number (NETLINK_GENERIC is 16)");
	int protocol = proto.As<Napi::Number>().Int32Value();
	if (protocol < 0 || protocol >= MAX_LINKS)
		Usage(env, std::string(usage) + ": protocol " + std::to_string(protocol) + " out of range 0-31");
	Napi::Value netns = opts.Get("netns");
	if (!netns.IsUndefined() && !netns.IsString())
		Usage(env, std::string(usage) + ": netns must be a path string such as /run/netns/NAME");

	int fd = netns.IsString() ? SocketInNetns(env, netns.As<Napi::String>().Utf8Value(), protocol)
				  : socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
	if (fd < 0)
		ThrowErrno(env, "netlink.open: socket(AF_NETLINK, " + std::to_string(protocol) + ")", errno);

	// nl_pid 0: the kernel picks a unique port id, which we read back to match replies.
	sockaddr_nl addr{};
	addr.nl_family = AF_NETLINK;
	socklen_t alen = sizeof(addr);
	if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
	    getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &alen) != 0) {
		int err = errno;
		close(fd);
		ThrowErrno(env, "netlink.open: binding the netlink socket", err);
	}
	// Extended acks carry the kernel's own error text and the offending attribute's offset (4.12+); capped acks stop
	// the kernel from echoing our whole request back in every error. Both are optional: old kernels just say no.
	bool extAck = SetFlag(fd, NETLINK_EXT_ACK);
	bool capAck = SetFlag(fd, NETLINK_CAP_ACK);

	Napi::Object res = Napi::Object::New(env);
	res.Set("fd", Napi::Number::New(env, fd));
	res.Set("portId", Napi::Number::New(env, addr.nl_pid));
	res.Set("extAck", Napi::Boolean::New(env, extAck));
	res.Set("capAck", Napi::Boolean::New(env, capAck));
	return res;
}

Napi::Value Send(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const char *usage = "netlink.send(fd, buffer)";
	int fd = CheckedFd(info, usage);
	if (info.Length() < 2 || !info[1].IsBuffer())
		Usage(env, std::string(usage) + ": expected a Buffer");
	Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
	sockaddr_nl kernel{};
	kernel.nl_family = AF_NETLINK;
	ssize_t n;
	do {
		n = sendto(fd, buf.Data(), buf.Length(), 0, reinterpret_cast<sockaddr *>(&kernel), sizeof(kernel));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		ThrowErrno(env, "netlink.send: sendto", errno);
	if (static_cast<size_t>(n) != buf.Length())
		ThrowErrno(env, "netlink.send: short write of " + std::to_string(n) + " bytes", EIO);
	return Napi::Number::New(env, static_cast<double>(n));
}

int64_t NowMs()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Napi::Value Receive(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const char *usage = "netlink.receive(fd, { timeoutMs })";
	int fd = CheckedFd(info, usage);
	if (info.Length() < 2 || !info[1].IsObject())
		Usage(env, std::string(usage) + ": expected an options object");
	Napi::Value t = info[1].As<Napi::Object>().Get("timeoutMs");
	if (!t.IsNumber() || t.As<Napi::Number>().DoubleValue() < 0)
		Usage(env, std::string(usage) + ": timeoutMs must be a number >= 0");
	int64_t deadline = NowMs() + static_cast<int64_t>(t.As<Napi::Number>().DoubleValue());

	// Received with a buffer of at least 32 KiB even for small datagrams: netlink sizes the next dump part from the
	// largest buffer a reader has offered (capped at 32 KiB), so a big table arrives in few datagrams.
	static thread_local std::vector<uint8_t> scratch(64 * 1024);
	for (;;) {
		int64_t left = deadline - NowMs();
		pollfd p{fd, POLLIN, 0};
		int r = poll(&p, 1, left > 0 ? static_cast<int>(left) : 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			ThrowErrno(env, "netlink.receive: poll", errno);
		if (r == 0)
			return env.Null();

		// MSG_PEEK|MSG_TRUNC returns the datagram's full length without consuming it, so nothing is ever cut short.
		ssize_t size = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		if (size < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (size < 0)
			ThrowErrno(env, "netlink.receive: recv", errno); // ENOBUFS: the kernel dropped replies, caller retries
		if (static_cast<size_t>(size) > scratch.size())
			scratch.resize(static_cast<size_t>(size));

		sockaddr_nl from{};
		iovec iov{scratch.data(), scratch.size()};
		msghdr msg{};
		msg.msg_name = &from;
		msg.msg_namelen = sizeof(from);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			ThrowErrno(env, "netlink.receive: recvmsg", errno);
		if (msg.msg_flags & MSG_TRUNC)
			ThrowErrno(env, "netlink.receive: datagram larger than " + std::to_string(scratch.size()) + " bytes",
				   EMSGSIZE);
		// Any local process may unicast to our port id; only the kernel (port 0) answers requests.
		if (from.nl_pid != 0)
			continue;
		return Napi::Buffer<uint8_t>::Copy(env, scratch.data(), static_cast<size_t>(n));
	}
}

Napi::Value Close(const Napi::CallbackInfo &info)
{
	int fd = CheckedFd(info, "netlink.close(fd)");
	if (close(fd) != 0 && errno != EINTR)
		ThrowErrno(info.Env(), "netlink.close", errno);
	return info.Env().Undefined();
}

} // namespace

Napi::Object InitNetlink(Napi::Env env, Napi::Object exports)
{
	Napi::Object nl = Napi::Object::New(env);
	nl.Set("open", Napi::Function::New(env, Open, "open"));
	nl.Set("send", Napi::Function::New(env, Send, "send"));
	nl.Set("receive", Napi::Function::New(env, Receive, "receive"));
	nl.Set("close", Napi::Function::New(env, Close, "close"));
	exports.Set("netlink", nl);
	return exports;
}
