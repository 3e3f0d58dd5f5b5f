"""The split bench/profile.sh prints: each perf sample goes to one part of
gatehouse by its innermost frame (crypto, allocator, copies, rustls, hyper,
tokio, gatehouse's own code, the kernel), and the kernel's share is broken
down by the system call it was in. A second table gives the inclusive share
of the functions the issue names (the per-request features)."""

import re
import sys
from collections import Counter

PARTS = [
    ("crypto (aws-lc)", r"aws_lc|ecp_nistz|x25519|sha256_block|sha512_block|beeu_|gcm_|aes_|aesni|"
     r"ChaCha|poly1305|bn_|BN_|EC_|HMAC|HKDF|CRYPTO_|EVP_|SHA\d|ecdsa"),
    ("allocator", r"rjem|jemalloc|je_|malloc|free\b|cfree|realloc|calloc|sdallocx|mallocx|rallocx|mi_"),
    ("copies (memcpy/memmove)", r"memmove|memcpy|memset|memcmp|bcmp"),
    ("rustls and webpki, not crypto", r"rustls|webpki|untrusted|x509_parser|der_parser|nom::"),
    ("hyper, h2, http", r"hyper|h2::|http::|httparse|http_body"),
    ("tokio and libc", r"tokio|mio::|futex|pthread|epoll|__GI_|__libc|syscall|clock_gettime|vdso"),
    ("gatehouse", r"gatehouse"),
    ("std, bytes, hashing", r"core::|alloc::|std::|hashbrown|bytes::|smallvec|arc_swap|tracing"),
]
# Inclusive: samples with a frame (its symbol's start) matching anywhere
# on the stack. Inlined frames carry only their short name, hence the bare
# names next to the module paths.
FEATURES = [
    ("metrics (counters and histograms)", r"<?gatehouse::metrics::"),
    ("request framing checks (h1scan, framing)",
     r"(feed|head_byte|end_line|end_head|size_byte|trailer_byte)<|<?gatehouse::proxy::handler::framing|framing_step"),
    ("path normalization", r"<?gatehouse::proxy::path::|normalize\b"),
    ("edge limits and admission (admit)", r"<?gatehouse::proxy::handler::admit::|admit\b"),
    ("x-forwarded-*, XFCC and request id", r"<?gatehouse::proxy::handler::forward::forwarded_headers|forwarded_headers\b"),
    ("routing (route match, host, upstream pick)", r"<?gatehouse::(snapshot::routes|config::host|upstream::)"),
]


def samples(path):
    stack = []
    for line in open(path, errors="replace"):
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        parts = line.strip().split(None, 2)
        sym = parts[1] if len(parts) > 1 else parts[0]
        dso = parts[2] if len(parts) > 2 else ""
        stack.append((sym, "kernel" in dso))
    if stack:
        yield stack


def part(stack):
    sym, kernel = stack[0]
    if kernel:
        for i, (s, _) in enumerate(stack):
            if "do_syscall_64" in s or "entry_SYSCALL" in s:
                caller = next((u for u, k in stack[i:] if not k), "?")
                return "kernel: " + re.sub(r"^__(GI_|libc_)*_*", "", caller)[:40]
        return "kernel: interrupts, softirq, scheduler"
    for name, pattern in PARTS:
        if re.search(pattern, sym):
            return name
    return "other"


def main():
    parts, features, total = Counter(), Counter(), 0
    for stack in samples(sys.argv[1]):
        total += 1
        parts[part(stack)] += 1
        for name, pattern in FEATURES:
            if any(re.match(pattern, s) for s, _ in stack):
                features[name] += 1
    if not total:
        sys.exit("no samples")
    kernel = sum(n for p, n in parts.items() if p.startswith("kernel"))
    print(f"{total} samples; by innermost frame:")
    print(f"  {100 * kernel / total:5.1f} %  kernel, of which:")
    for p, n in parts.most_common():
        if p.startswith("kernel"):
            print(f"      {100 * n / total:5.1f} %  {p[8:]}")
    for p, n in parts.most_common():
        if not p.startswith("kernel"):
            print(f"  {100 * n / total:5.1f} %  {p}")
    print("inclusive (anywhere on the stack):")
    for name, _ in FEATURES:
        print(f"  {100 * features[name] / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
