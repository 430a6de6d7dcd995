/* Hide AVX-512, VNNI, BF16, FP16 and AMX from CPUID, so that libraries that pick
 * kernels at run time (XNNPACK in LiteRT, oneDNN, numpy) choose their AVX2 paths.
 * Uses Linux CPUID faulting (arch_prctl ARCH_SET_CPUID): every CPUID traps with
 * SIGSEGV, the handler runs the real instruction and clears the bits. SIGSEGV
 * handlers the program installs with sigaction() (Python's faulthandler, as in
 * pytest) are kept aside and called for every other fault. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static struct sigaction program_action; /* the program's own SIGSEGV action (default at first) */

static int cpuid_faulting(int faulting) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, faulting ? 0 : 1); }

static void mask(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    if (leaf == 7 && sub == 0) {
        /* EBX: avx512f dq ifma pf er cd bw vl */
        *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        /* ECX: avx512vbmi vbmi2 vnni bitalg vpopcntdq */
        *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: avx512_4vnniw 4fmaps vp2intersect amx-bf16 avx512fp16 amx-tile amx-int8 */
        *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: avx-vnni avx512_bf16 amx-fp16 avx-ifma */
        *a &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        /* EDX: avx-vnni-int8 avx-ne-convert amx-complex avx-vnni-int16 avx10 */
        *d &= ~((1u << 4) | (1u << 5) | (1u << 8) | (1u << 10) | (1u << 19));
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *reg = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    /* a faulting CPUID is a general protection fault (SI_KERNEL); page faults are not */
    if (info->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) {
        if (program_action.sa_flags & SA_SIGINFO) {
            program_action.sa_sigaction(sig, info, context);
        } else if (program_action.sa_handler != SIG_DFL && program_action.sa_handler != SIG_IGN) {
            program_action.sa_handler(sig);
        } else { /* the default: the fault happens again on return and ends the process */
            struct sigaction fallback;
            memset(&fallback, 0, sizeof fallback);
            fallback.sa_handler = SIG_DFL;
            real_sigaction(SIGSEGV, &fallback, NULL);
        }
        return;
    }
    unsigned leaf = (unsigned)reg[REG_RAX], sub = (unsigned)reg[REG_RCX], a, b, c, d;
    cpuid_faulting(0);
    __cpuid_count(leaf, sub, a, b, c, d);
    cpuid_faulting(1);
    mask(leaf, sub, &a, &b, &c, &d);
    reg[REG_RAX] = a; reg[REG_RBX] = b; reg[REG_RCX] = c; reg[REG_RDX] = d;
    reg[REG_RIP] += 2;
}

/* The program's sigaction(SIGSEGV, ...) is recorded, not installed: ours stays in front. */
int sigaction(int sig, const struct sigaction *action, struct sigaction *old) {
    if (sig != SIGSEGV) return real_sigaction(sig, action, old);
    if (old) *old = program_action;
    if (action) program_action = *action;
    return 0;
}

__attribute__((constructor)) static void install(void) {
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    real_sigaction(SIGSEGV, &action, NULL);
    program_action.sa_handler = SIG_DFL;
    if (cpuid_faulting(1) != 0) {
        fprintf(stderr, "cpuid_avx2: this CPU or kernel has no CPUID faulting; nothing is hidden\n");
        exit(2);
    }
}
