# Hand-written inline asm (abi/tests/zero_cost/hand_written.rs). Regenerate: UPDATE_ZERO_COST=1 cargo test -p lguest-abi --test zero_cost
zc_hand_flush_async:
	xorl	%edi, %edi
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%esi, %esi
	xorl	%eax, %eax

	xchgq	%rbx, %rdi
	vmcall
	xchgq	%rbx, %rdi

	retq

zc_hand_pio_notify:
	movabsq	$140737488355328, %rax
	addq	%rax, %rdi
	movl	$17, %eax
	xorl	%esi, %esi
	xorl	%edx, %edx
	xorl	%ecx, %ecx

	outl	%eax, $244

	retq

zc_hand_set_pte:
	movq	%rsi, %rcx
	movl	$14, %eax
	xorl	%esi, %esi

	xchgq	%rbx, %rdi
	vmcall
	xchgq	%rbx, %rdi

	retq

zc_hand_shutdown:
	movabsq	$140737488355328, %r8
	addq	%rdi, %r8
	movl	$2, %ecx
	movl	$2, %eax
	xorl	%edx, %edx
	xorl	%esi, %esi

	xchgq	%rbx, %r8
	vmcall
	xchgq	%rbx, %r8

	retq

