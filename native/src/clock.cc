// Clock readings for converting kernel timestamps to wall-clock time.
//
// bpf_ktime_get_ns() is CLOCK_MONOTONIC. Its offset to CLOCK_REALTIME is measured, not assumed: read
// MONOTONIC, REALTIME, MONOTONIC back to back many times and keep the tightest bracket; the offset is
// REALTIME minus the bracket's midpoint, uncertain by half its width. Redone periodically by the caller,
// because NTP slews REALTIME against MONOTONIC.
#include "addon.h"

#include <time.h>

#include <cstdint>

static uint64_t Now(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// monotonicToRealtime({ samples? }) -> { offsetNs: bigint, uncertaintyNs: number, monotonicNs: bigint }
static Napi::Value MonotonicToRealtime(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int samples = 32;
	if (info.Length() > 0 && info[0].IsObject()) {
		Napi::Value s = info[0].As<Napi::Object>().Get("samples");
		if (!s.IsUndefined()) {
			if (!s.IsNumber() || s.As<Napi::Number>().Int32Value() < 1 || s.As<Napi::Number>().Int32Value() > 10000)
				throw Napi::TypeError::New(env, "monotonicToRealtime({ samples }): samples must be 1..10000");
			samples = s.As<Napi::Number>().Int32Value();
		}
	}
	uint64_t best_width = UINT64_MAX;
	int64_t best_offset = 0;
	uint64_t mono = 0;
	for (int i = 0; i < samples; i++) {
		uint64_t a = Now(CLOCK_MONOTONIC);
		uint64_t r = Now(CLOCK_REALTIME);
		uint64_t b = Now(CLOCK_MONOTONIC);
		if (b - a < best_width) {
			best_width = b - a;
			best_offset = int64_t(r) - int64_t(a + (b - a) / 2);
			mono = b;
		}
	}
	Napi::Object o = Napi::Object::New(env);
	o.Set("offsetNs", Napi::BigInt::New(env, best_offset));
	o.Set("uncertaintyNs", Napi::Number::New(env, double(best_width) / 2));
	o.Set("monotonicNs", Napi::BigInt::New(env, mono));
	return o;
}

static Napi::Value MonotonicNow(const Napi::CallbackInfo &info)
{
	return Napi::BigInt::New(info.Env(), Now(CLOCK_MONOTONIC));
}

Napi::Object InitClock(Napi::Env env, Napi::Object exports)
{
	exports.Set("monotonicToRealtime", Napi::Function::New(env, MonotonicToRealtime));
	exports.Set("monotonicNow", Napi::Function::New(env, MonotonicNow));
	return exports;
}
