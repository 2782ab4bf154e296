// Each source file registers its exports into the module object.
#pragma once
#include <napi.h>

Napi::Object InitBpfObject(Napi::Env env, Napi::Object exports);
Napi::Object InitNetlink(Napi::Env env, Napi::Object exports);
Napi::Object InitClock(Napi::Env env, Napi::Object exports);
Napi::Object InitNotify(Napi::Env env, Napi::Object exports);

// Throws a JS Error "<what>: <strerror(err)>" with .code = "E…" and .errno = err.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string &what, int err);
