# wait_amd64.s: the proxy's waiter for linux/amd64, the source of the
# machine code in internal/waiter/waiter_linux_amd64.go (see that file;
# TestCodeMatchesSource reassembles this with GNU as when it is present).
#
#   procref-wait FD NAME   (environment: PROCREF_WAIT_MESSAGE=TEXT first)
#
# Reads from descriptor FD (decimal) until it has 4 bytes. "bye\n" -> exit
# 0. End of input, an error, or anything else -> TEXT (what follows the
# first '=' of the first environment entry) on stderr, exit 1. NAME is for
# ps only.
# SIGHUP, SIGINT and SIGTERM -> exit 0. No libc, no data segment: the
# stack holds the sigaction and the read buffer.
.intel_syntax noprefix
.text
.globl _start
_start:
	mov rbx, rsp                    # rbx = &argc; survives syscalls
	sub rsp, 64                     # [rsp, +32): sigaction; [rsp+32, +4): buffer
	lea rax, [rip + quit]
	mov [rsp], rax                  # sa_handler = quit
	mov qword ptr [rsp+8], 0x04000000   # sa_flags = SA_RESTORER (required on x86-64)
	mov [rsp+16], rax               # sa_restorer = quit (never returned to)
	mov qword ptr [rsp+24], 0       # sa_mask = {}
	mov edi, 1                      # SIGHUP
	call sigact
	mov edi, 2                      # SIGINT
	call sigact
	mov edi, 15                     # SIGTERM
	call sigact
	cmp qword ptr [rbx], 3          # argc must be 3
	jne fail0
	mov rsi, [rbx+16]               # argv[1]: the descriptor, decimal
	xor r12d, r12d
digit:
	movzx eax, byte ptr [rsi]
	sub eax, 48
	cmp eax, 9
	ja read0
	imul r12d, r12d, 10
	add r12d, eax
	inc rsi
	jmp digit
read0:
	xor r13d, r13d                  # bytes read so far
read:
	mov edi, r12d
	lea rsi, [rsp+32+r13]
	mov edx, 4
	sub edx, r13d
	xor eax, eax                    # read(2)
	syscall
	cmp rax, -4                     # EINTR: again
	je read
	test rax, rax
	jle fail                        # end of input or error
	add r13, rax
	cmp r13, 4
	jb read
	cmp dword ptr [rsp+32], 0x0a657962  # "bye\n"
	jne fail
quit:
	xor edi, edi
	mov eax, 231                    # exit_group(0)
	syscall
fail:
	mov rsi, [rbx+40]               # envp[0] (argc 3: argv at rbx+8, NULL at rbx+32)
	test rsi, rsi
	jz fail0
skip:
	movzx eax, byte ptr [rsi]       # skip "PROCREF_WAIT_MESSAGE="
	inc rsi
	test eax, eax
	jz fail0
	cmp eax, 61                     # '='
	jne skip
	xor edx, edx
len:
	cmp byte ptr [rsi+rdx], 0
	je say
	inc rdx
	jmp len
say:
	mov edi, 2
	mov eax, 1                      # write(2, message, len)
	syscall
fail0:
	mov edi, 1
	mov eax, 231                    # exit_group(1)
	syscall
sigact:
	lea rsi, [rsp+8]                # the caller's sigaction (call pushed 8 bytes)
	xor edx, edx
	mov r10d, 8                     # sizeof(sigset_t) for the kernel
	mov eax, 13                     # rt_sigaction(sig, &act, NULL, 8)
	syscall
	ret
