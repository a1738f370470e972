package grail

import "math"

// PositionBound is an upper bound on the probability, over the projection
// vector r_t, that a forged hidden state h' passes the sketch check at one
// position against the honest h, when max_i |h'_i - h_i| >= maxDiff and the
// tolerance is at most tol sketch units.
//
// Fix every r_j except the coordinate i with the largest |d_i|, d = h' - h.
// The sketch difference is then SketchScale*(c + r_i d_i) plus at most one
// unit of rounding on each side, and it passes only if that lies within tol
// of a multiple of q. As r_i runs over 255 consecutive integers, r_i d_i
// steps by |d_i|: an accepted window of width (2 tol + 2)/SketchScale holds at
// most (2 tol + 2)/(SketchScale |d_i|) + 1 of them, and the span
// 254 |d_i| SketchScale meets at most 254 |d_i| SketchScale / q + 1 windows.
func PositionBound(maxDiff float64, tol uint32) float64 {
	if maxDiff <= 0 {
		return 1
	}
	perWindow := (2*float64(tol)+2)/(SketchScale*maxDiff) + 1
	windows := math.Floor((projValues-1)*maxDiff*SketchScale/SketchModulus) + 1
	return math.Min(1, perWindow*windows/projValues)
}
