package tensor

//go:generate go run ./internal/asmgen -out gemm_kernels_amd64.s

// gemmKernelPacked runs the 6x16 micro-kernel on `tiles` tiles of C stacked
// down the rows (tile t at c + t*6*ldc), all against one packed B panel
// (B[p][j] at b[p*16+j]), over kc steps of k: C[r][j] = fma(A[r][p],
// B[p][j], C[r][j]) for p = 0..kc-1 in order. A is packed, tile t's A[r][p]
// at a[t*kc*6 + p*6 + r]. The tiles start from C when load != 0, else +0.
//
//go:noescape
func gemmKernelPacked(kc int, a *float32, b *float32, c *float32, ldc int, load int, tiles int)

// gemmKernelStrided is gemmKernelPacked with A read in place, row-major
// with leading dimension lda: tile t's A[r][p] is a[(t*6+r)*lda + p].
//
//go:noescape
func gemmKernelStrided(kc int, a *float32, lda int, b *float32, c *float32, ldc int, load int, tiles int)

// gemmKernelEdgeN is gemmKernelPacked for one tile of only N < 6 rows (the
// last rows of C), with A packed as for full tiles.
//
//go:noescape
func gemmKernelEdge1(kc int, a *float32, b *float32, c *float32, ldc int, load int)

//go:noescape
func gemmKernelEdge2(kc int, a *float32, b *float32, c *float32, ldc int, load int)

//go:noescape
func gemmKernelEdge3(kc int, a *float32, b *float32, c *float32, ldc int, load int)

//go:noescape
func gemmKernelEdge4(kc int, a *float32, b *float32, c *float32, ldc int, load int)

//go:noescape
func gemmKernelEdge5(kc int, a *float32, b *float32, c *float32, ldc int, load int)

// gemmKernelRows runs one packed tile of mr <= 6 rows.
func gemmKernelRows(mr, kc int, a, b, c *float32, ldc, load int) {
	switch mr {
	case 1:
		gemmKernelEdge1(kc, a, b, c, ldc, load)
	case 2:
		gemmKernelEdge2(kc, a, b, c, ldc, load)
	case 3:
		gemmKernelEdge3(kc, a, b, c, ldc, load)
	case 4:
		gemmKernelEdge4(kc, a, b, c, ldc, load)
	case 5:
		gemmKernelEdge5(kc, a, b, c, ldc, load)
	default:
		gemmKernelPacked(kc, a, b, c, ldc, load, 1)
	}
}

// addRowAVX2 adds src[:n] to dst[:n].
//
//go:noescape
func addRowAVX2(dst, src *float32, n int)

func addRow(dst, src []float32) {
	if len(dst) == 0 {
		return
	}
	src = src[:len(dst)]
	if AVX2.Supported() {
		addRowAVX2(&dst[0], &src[0], len(dst))
		return
	}
	addRowGeneric(dst, src)
}

// gemvT32 computes 32 elements of a single-row product with B transposed:
// c[r] = fma chain over p < k8 (a multiple of 8) of x[p]*b[r*ldb+p], in
// order, from c[r] when load != 0, else from +0.
//
//go:noescape
func gemvT32(k8 int, x *float32, b *float32, ldb int, c *float32, load int)

// gemmPackT8 transposes 8 rows into columns: dst[p*dstStride+r] =
// src[min(r, rows-1)*ld + p] for p < n (a multiple of 8), r < 8. It writes
// 8 floats per destination row, spilling past the last one when
// dstStride < 8.
//
//go:noescape
func gemmPackT8(dst *float32, dstStride int, src *float32, ld int, rows int, n int)

// gemmPackCopy16 copies 16 floats per row: dst[p*16:p*16+16] =
// src[p*ld:p*ld+16] for p < n.
//
//go:noescape
func gemmPackCopy16(dst, src *float32, ld int, n int)

// gemmPackCopy6 copies 6 floats per row: dst[p*6:p*6+6] = src[p*ld:p*ld+6]
// for p < n.
//
//go:noescape
func gemmPackCopy6(dst, src *float32, ld int, n int)

// gemmPackAMinN is the width of C from which rows of A are packed even when
// they are contiguous along k: the transposing copy costs a fraction of a
// cycle per element and pays off when each element feeds many column
// panels; for narrow C (attention heads) the kernel reads A in place.
const gemmPackAMinN = 384

// gemmFast is the blocked GEMM driver of the AVX2 path (BLIS loop order).
// For each block of gemmKC steps of k, op(B) is packed into 16-column
// panels (kc x 16, transposed on the fly when tB) that stay in L1 while the
// 6-row micro-panels of A stream past them. A is packed into kc x 6
// micro-panels when tA (its rows would be strided along k) or when C is
// wide; otherwise the kernel reads A in place and only a partial last row
// panel is packed. Tiles with fewer than 6 rows use kernels of that height;
// tiles with fewer than 16 columns go through a small buffer.
func gemmFast(sc *gemmScratch, tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	if M == 1 && !tA && tB && N >= 32 && K >= 8 {
		gemvT(sc, N, K, a, b, ldb, c, accumulate)
		return
	}
	packA := tA || N >= gemmPackAMinN
	mFull := M - M%gemmMR
	tile := sc.tile[:]
	for jc := 0; jc < N; jc += gemmNC {
		nc := min(gemmNC, N-jc)
		panels := (nc + gemmNR - 1) / gemmNR
		for pc := 0; pc < K; pc += gemmKC {
			kc := min(gemmKC, K-pc)
			bp := sc.bufB(panels * kc * gemmNR)
			for q := range panels {
				packBPanel(bp[q*kc*gemmNR:(q+1)*kc*gemmNR], tB, b, ldb, pc, kc, jc+q*gemmNR, min(gemmNR, nc-q*gemmNR))
			}
			load := 0
			if accumulate || pc > 0 {
				load = 1
			}
			for ic := 0; ic < M; ic += gemmMC {
				mc := min(gemmMC, M-ic)
				var ap []float32
				if packA {
					ap = sc.bufA(((mc + gemmMR - 1) / gemmMR) * kc * gemmMR)
					for ir := 0; ir < mc; ir += gemmMR {
						packAPanel(ap[(ir/gemmMR)*kc*gemmMR:], tA, a, lda, ic+ir, min(gemmMR, mc-ir), pc, kc)
					}
				} else if ic+mc > mFull {
					ap = sc.bufA(kc * gemmMR)
					packAPanel(ap, false, a, lda, mFull, M-mFull, pc, kc)
				}
				// Full tiles of this row block go to the kernel in one call.
				fullEnd := min(ic+mc, mFull)
				full := max(0, fullEnd-ic) / gemmMR
				for jr := 0; jr < nc; jr += gemmNR {
					nr := min(gemmNR, nc-jr)
					bpan := &bp[(jr/gemmNR)*kc*gemmNR]
					i := ic
					if nr == gemmNR && full > 0 {
						cp := &c[ic*ldc+jc+jr]
						if packA {
							gemmKernelPacked(kc, &ap[0], bpan, cp, ldc, load, full)
						} else {
							gemmKernelStrided(kc, &a[ic*lda+pc], lda, bpan, cp, ldc, load, full)
						}
						i += full * gemmMR
					}
					// The remaining tiles are partial: fewer than 6 rows (the
					// bottom edge of C) or fewer than 16 columns (the right
					// edge). The latter go through the tile buffer.
					for ; i < ic+mc; i += gemmMR {
						mr := min(gemmMR, M-i)
						cOff := i*ldc + jc + jr
						var at *float32 // packed A of this tile, nil if read in place
						switch {
						case packA:
							at = &ap[((i-ic)/gemmMR)*kc*gemmMR]
						case i >= mFull:
							at = &ap[0]
						}
						if nr == gemmNR {
							gemmKernelRows(mr, kc, at, bpan, &c[cOff], ldc, load)
							continue
						}
						if load != 0 {
							for r := range mr {
								copy(tile[r*gemmNR:r*gemmNR+nr], c[cOff+r*ldc:cOff+r*ldc+nr])
							}
						}
						if at == nil {
							gemmKernelStrided(kc, &a[i*lda+pc], lda, bpan, &tile[0], gemmNR, load, 1)
						} else {
							gemmKernelRows(mr, kc, at, bpan, &tile[0], gemmNR, load)
						}
						for r := range mr {
							copy(c[cOff+r*ldc:cOff+r*ldc+nr], tile[r*gemmNR:r*gemmNR+nr])
						}
					}
				}
			}
		}
	}
}

// gemvT is gemmFast for one row of C with B transposed (x · B^T, the
// layout of a MatMul on a single token): packing B would cost more than the
// product, so 32 rows of B at a time are transposed in registers and
// consumed at once. The last K%8 steps, and the last N%32 columns, take the
// ordinary routes.
func gemvT(sc *gemmScratch, N, K int, x, b []float32, ldb int, c []float32, accumulate bool) {
	n32, k8 := N&^31, K&^7
	x = x[:K]
	load := 0
	if accumulate {
		load = 1
	}
	for j := 0; j < n32; j += 32 {
		_ = b[(j+31)*ldb+K-1]
		cj := c[j : j+32]
		gemvT32(k8, &x[0], &b[j*ldb], ldb, &cj[0], load)
		for p := k8; p < K; p++ {
			for r := range cj {
				cj[r] = fma32(x[p], b[(j+r)*ldb+p], cj[r])
			}
		}
	}
	if n32 < N {
		gemmFast(sc, false, true, 1, N-n32, K, x, K, b[n32*ldb:], ldb, c[n32:], N-n32, accumulate)
	}
}

// packBPanel packs op(B)[pc:pc+kc, j0:j0+nr] (nr <= 16) as kc x 16.
// Columns nr..15 of a partial panel hold unspecified values: they only
// reach columns of the tile buffer that are never copied to C.
func packBPanel(pan []float32, tB bool, b []float32, ldb, pc, kc, j0, nr int) {
	pan = pan[:kc*gemmNR]
	switch {
	case nr == gemmNR && !tB:
		_ = b[(pc+kc-1)*ldb+j0+gemmNR-1]
		gemmPackCopy16(&pan[0], &b[pc*ldb+j0], ldb, kc)
	case !tB:
		for p := range kc {
			copy(pan[p*gemmNR:p*gemmNR+nr], b[(pc+p)*ldb+j0:(pc+p)*ldb+j0+nr])
		}
	default:
		// Rows j0.. of B are contiguous along k: transpose 8 of them at a
		// time, then finish the last kc%8 steps one by one.
		k8 := kc &^ 7
		for g := 0; g < nr; g += 8 {
			if k8 > 0 {
				rows := min(8, nr-g)
				_ = b[(j0+g+rows-1)*ldb+pc+k8-1]
				gemmPackT8(&pan[g], gemmNR, &b[(j0+g)*ldb+pc], ldb, rows, k8)
			}
		}
		for jj := range nr {
			col := b[(j0+jj)*ldb+pc : (j0+jj)*ldb+pc+kc]
			for p := k8; p < kc; p++ {
				pan[p*gemmNR+jj] = col[p]
			}
		}
	}
}

// packAPanel packs op(A)[i0:i0+mr, pc:pc+kc] (mr <= 6) as kc x 6. Rows
// mr..5 of a partial panel hold unspecified values: they only reach rows of
// the tile buffer that are never copied to C. ap needs 2 floats of room past
// kc*6 (the 8-wide stores of gemmPackT8 spill).
func packAPanel(ap []float32, tA bool, a []float32, lda, i0, mr, pc, kc int) {
	ap = ap[:kc*gemmMR+2]
	switch {
	case tA && mr == gemmMR:
		_ = a[(pc+kc-1)*lda+i0+gemmMR-1]
		gemmPackCopy6(&ap[0], &a[pc*lda+i0], lda, kc)
	case tA:
		for p := range kc {
			src := a[(pc+p)*lda+i0 : (pc+p)*lda+i0+mr]
			dst := ap[p*gemmMR : p*gemmMR+mr]
			for r, v := range src {
				dst[r] = v
			}
		}
	default:
		k8 := kc &^ 7
		if k8 > 0 {
			_ = a[(i0+mr-1)*lda+pc+k8-1]
			gemmPackT8(&ap[0], gemmMR, &a[i0*lda+pc], lda, mr, k8)
		}
		for r := range mr {
			row := a[(i0+r)*lda+pc : (i0+r)*lda+pc+kc]
			for p := k8; p < kc; p++ {
				ap[p*gemmMR+r] = row[p]
			}
		}
	}
}
