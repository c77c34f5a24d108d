"""What machine a figure was measured on: the CPU's model and the vector-instruction flags that
decide TensorFlow's speed (AVX2, AVX-512, AVX512_BF16 for mixed_bfloat16, AMX)."""
import os
import platform

SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")


def cpu_description():
    """{cpu: model name, cpu_flags: the SPEED_FLAGS present, cpu_count}."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass  # not Linux: the flags stay unknown
    return dict(cpu=model, cpu_flags=" ".join(f for f in SPEED_FLAGS if f in flags) or "unknown",
                cpu_count=os.cpu_count())
