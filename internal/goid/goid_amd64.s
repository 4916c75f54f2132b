#include "textflag.h"

// func Current() uintptr — see goid_asm.go.
TEXT ·Current(SB),NOSPLIT,$0-8
	MOVQ (TLS), AX
	MOVQ AX, ret+0(FP)
	RET
