#define _GNU_SOURCE
#include "executor/runtime/fakeroot.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define BERTH_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define BERTH_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Calls that change an owner or an id: they "succeed" and do nothing. */
static const unsigned faked[] = {
#ifdef SYS_chown
	SYS_chown,
#endif
#ifdef SYS_lchown
	SYS_lchown,
#endif
	SYS_fchown,    SYS_fchownat,  SYS_setuid,    SYS_setgid,    SYS_setreuid,
	SYS_setregid,  SYS_setresuid, SYS_setresgid, SYS_setgroups, SYS_setfsuid,
	SYS_setfsgid,
};

#define N_FAKED (sizeof(faked) / sizeof(*faked))

int berth_fake_id_syscalls(struct berth_err *err)
{
#ifndef BERTH_AUDIT_ARCH
	return berth_fail(err, 0, "--container-remap-root: faking chown and set*id is "
			  "built for x86_64 and aarch64 only");
#else
	/* The native ABI only (another one, i386 on x86_64, has other call
	 * numbers: it runs unfaked, as without the option), then one jump
	 * per faked call.  This filter guards nothing; it only fakes. */
	struct sock_filter prog[4 + N_FAKED + 2];
	size_t n = 0;

	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, arch));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, BERTH_AUDIT_ARCH,
						 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < N_FAKED; i++) /* jump to "return 0" when equal */
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, faked[i],
							 (uint8_t)(N_FAKED - i), 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0);
	struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return berth_fail(err, errno, "--container-remap-root: prctl(NO_NEW_PRIVS)");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
		return berth_fail(err, errno, "--container-remap-root: cannot install the "
				  "seccomp filter that lets chown and set*id succeed");
	return 0;
#endif
}
