package tensor

// GELU constants. 0.5*(1+tanh(u)) equals 1/(1+exp(-2u)), so the GPT-2 tanh
// approximation is evaluated as x/(1+exp(-2u)) with
// u = sqrt(2/pi)*(x + 0.044715*x^3): one exp, no cancellation near zero and
// no overflow (exp32 saturates, and x/huge is the right ~0).
const (
	geluA float32 = 0.044715
	// geluM2K is -2*sqrt(2/pi), the factor turning x + a*x^3 into -2u.
	geluM2K float32 = -1.5957691216057308
	// geluA3 and geluK2 give d(2u)/dx = 2*sqrt(2/pi)*(1 + 3a*x^2).
	geluA3 float32 = 3 * 0.044715
	geluK2 float32 = 1.5957691216057308
	// geluClamp bounds |x| before x^3 is formed, so that huge inputs cannot
	// overflow into inf*0. gelu(x) for x < -20 is below 1e-36 in magnitude
	// either way, and gelu'(x) is exactly 1 above 20 and ~0 below -20.
	geluClamp float32 = 20
)

// gelu32 is the Go twin of the AVX2 GELU, operation for operation.
func gelu32(x float32) float32 {
	if x < -geluClamp {
		x = -geluClamp
	}
	x2 := float32(x * x)
	x3 := float32(x2 * x)
	in := x + float32(geluA*x3)
	e := exp32(float32(geluM2K * in))
	return x / (1 + e)
}

// geluGrad32 is d gelu/dx = s + x*s*(1-s)*2u' with s = 1/(1+e), e = exp(-2u),
// where s*(1-s) is computed as e*s*s to stay accurate when s is near 1.
func geluGrad32(x float32) float32 {
	if x < -geluClamp {
		x = -geluClamp
	} else if x > geluClamp {
		x = geluClamp
	}
	x2 := float32(x * x)
	x3 := float32(x2 * x)
	in := x + float32(geluA*x3)
	e := exp32(float32(geluM2K * in))
	s := 1 / (1 + e)
	du := float32(geluK2 * (1 + float32(geluA3*x2)))
	q := float32(e * s)
	q = float32(q * s)
	q = float32(q * du)
	q = float32(q * x)
	return s + q
}

// GELU sets out = gelu(inp) element-wise (GPT-2's tanh approximation).
func (k Kernels) GELU(out, inp []float32) {
	mustEq("GELU", "inp", len(inp), len(out))
	if k.avx2() {
		geluAVX2(out, inp)
		return
	}
	for i, x := range inp {
		out[i] = gelu32(x)
	}
}

// GELUBackward accumulates dinp += gelu'(inp) * dout element-wise.
func (k Kernels) GELUBackward(dinp, inp, dout []float32) {
	mustEq("GELUBackward", "inp", len(inp), len(dinp))
	mustEq("GELUBackward", "dout", len(dout), len(dinp))
	if k.avx2() {
		geluBwdAVX2(dinp, inp, dout)
		return
	}
	for i, x := range inp {
		dinp[i] += float32(geluGrad32(x) * dout[i])
	}
}

// GELU is Kernels.GELU split across workers.
func (e *Engine) GELU(out, inp []float32) {
	mustEq("GELU", "inp", len(inp), len(out))
	e.elementwise(opGELU, len(out), out, inp, nil, 0)
}

// GELUBackward is Kernels.GELUBackward split across workers.
func (e *Engine) GELUBackward(dinp, inp, dout []float32) {
	mustEq("GELUBackward", "inp", len(inp), len(dinp))
	mustEq("GELUBackward", "dout", len(dout), len(dinp))
	e.elementwise(opGELUBackward, len(dinp), dinp, inp, dout, 0)
}
