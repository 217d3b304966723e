"""Compiled kernel of :class:`~sklearn_privacy.motion.SSASmoother`.

Imported on the first ``transform`` only, so that importing the package neither imports
numba nor compiles anything; ``cache=True`` keeps the machine code in ``__pycache__``,
so later processes load it instead of compiling (10 to 30 s) again.
"""

import math

import numpy as np
from numba import njit

# Components whose energy is below _TOL**2 of the series' (trace of the deflated lag
# covariance) are left out: they move no output by more than _TOL of the series' norm.
_TOL = 1e-7
_MAX_LAGUERRE = 50  # Laguerre steps per eigenvalue; 3 to 6 are typical
_LANES = 64  # series processed together, one per SIMD lane
# Squared norm below which a column's part under the sub-diagonal is taken as zero in
# the tridiagonal reduction of a trace-1 matrix: (1e-3 eps)**2, far below rounding.
_NEGLIGIBLE = (1e-3 * np.finfo(np.float64).eps) ** 2


@njit(cache=True, error_model="numpy")
def ssa_smooth(X, L, n_components, out):
    """SSA smoothing of every channel of every window of X (n, T, d) float32 into out.

    In float64, ``_LANES`` series (window, channel) at a time: each step runs on all of
    them in lockstep, the innermost loop over the series (SIMD lanes). One thread.
    """
    n_windows, T, d = X.shape
    xb = np.empty((T, _LANES))
    Cb = np.empty((L, L, _LANES))
    Ub = np.empty((n_components, L, _LANES))
    yb = np.empty((T, _LANES))
    rank = np.empty(_LANES, dtype=np.int64)
    n_series = n_windows * d
    for first in range(0, n_series, _LANES):
        n = min(_LANES, n_series - first)
        for b in range(n):
            w, ch = divmod(first + b, d)
            for t in range(T):
                xb[t, b] = X[w, t, ch]
        _lag_covariance(xb, n, Cb)
        _leading_eigenvectors(Cb, n, Ub, rank)
        _diagonal_average(xb, n, Ub, rank, yb)
        for b in range(n):
            w, ch = divmod(first + b, d)
            for t in range(T):
                out[w, t, ch] = yb[t, b]


@njit(cache=True, error_model="numpy")
def _lag_covariance(x, n, C):
    """``C[:, :, b] = traj @ traj.T`` for the L x K trajectory matrix of ``x[:, b]``:
    the first row by one pass over x, the others by the recurrence
    ``C[i, j] = C[i-1, j-1] - first product + last product``."""
    T = x.shape[0]
    L = C.shape[0]
    K = T - L + 1
    for j in range(L):
        for b in range(n):
            C[0, j, b] = 0.0
    for t in range(K):
        for j in range(L):
            for b in range(n):
                C[0, j, b] += x[t, b] * x[t + j, b]
    for i in range(1, L):
        for j in range(i, L):
            for b in range(n):
                C[i, j, b] = (C[i - 1, j - 1, b] - x[i - 1, b] * x[j - 1, b]
                              + x[i - 1 + K, b] * x[j - 1 + K, b])
    for i in range(L):
        for j in range(i):
            for b in range(n):
                C[i, j, b] = C[j, i, b]


@njit(cache=True, error_model="numpy")
def _leading_eigenvectors(C, n, U, rank):
    """Leading eigenvectors of the PSD matrices ``C[:, :, b]``, ``b < n``, into the rows
    of ``U[:, :, b]``; their number (components left out: see ``_TOL``) into rank.

    The n problems are solved in lockstep, the innermost loop running over them (SIMD
    lanes), component by component: the top eigenvector of the deflated matrix
    ``M = (I - V V.T) C (I - V V.T)`` (projection deflation keeps precision relative to
    the remaining eigenvalues), computed exactly whatever the spectrum:

    - ``M / trace(M)`` is reduced to a tridiagonal T by Householder reflections;
    - the largest eigenvalue of T by Laguerre's iteration from above a Gershgorin bound
      (cubic convergence, monotone for a polynomial with real roots: every pivot of
      ``x I - T`` stays positive); 3 to 6 steps;
    - its eigenvector by inverse iteration with that shift (two solves with
      ``x I - T = L D L.T``, tiny pivots replaced as in LAPACK), then by the
      reflections back to the basis of M.
    """
    L, _, B = C.shape
    n_components = U.shape[0]
    eps = np.finfo(np.float64).eps
    M = C.copy()
    A = np.empty_like(C)
    R = np.empty_like(C)  # R[j, j + 1:, b]: vector of the j-th reflection
    diag = np.empty((L, B))
    sub = np.empty((L, B))
    e2 = np.empty((L, B))
    beta = np.empty((L, B))  # reflection j is I - beta[j] u u.T (beta = 0: none)
    w = np.empty((L, B))
    v = np.empty((L, B))
    total = np.zeros(B)
    trace = np.empty(B)
    x = np.empty(B)
    lane = np.empty((5, B))  # per-lane scalars of the loops below
    active = np.empty(B, dtype=np.bool_)
    ok = np.empty(B, dtype=np.bool_)
    done = np.empty(B, dtype=np.bool_)
    for b in range(n):
        rank[b] = n_components
    for i in range(L):
        for b in range(n):
            total[b] += C[i, i, b]
    for c in range(n_components):
        trace[:n] = 0.0
        for i in range(L):
            for b in range(n):
                trace[b] += M[i, i, b]
        for b in range(n):
            # Left out once the remaining energy is negligible (or the series is 0);
            # such lanes solve for I / L instead, their results unused.
            active[b] = trace[b] > _TOL * _TOL * total[b]
            if not active[b]:
                rank[b] = min(rank[b], c)
            lane[0, b] = 1.0 / trace[b] if active[b] else 0.0
        for i in range(L):
            for j in range(L):
                for b in range(n):
                    A[i, j, b] = M[i, j, b] * lane[0, b]
            for b in range(n):
                if not active[b]:
                    A[i, i, b] = 1.0 / L
        # -- Householder tridiagonalization.
        tail = lane[0]
        for j in range(L - 2):
            tail[:n] = 0.0
            for i in range(j + 2, L):
                for b in range(n):
                    tail[b] += A[i, j, b] * A[i, j, b]
            for i in range(j + 2, L):
                for b in range(n):
                    R[j, i, b] = A[i, j, b]
            for b in range(n):
                x0 = A[j + 1, j, b]
                norm = math.sqrt(x0 * x0 + tail[b])
                alpha = -norm if x0 >= 0.0 else norm
                # A tail below _NEGLIGIBLE is left in place (ignored): it moves no
                # eigenvalue of A (trace 1) by more than rounding, and reflecting it
                # would overflow beta (1 / tail) and fill A with inf and NaN.
                reflect = tail[b] > _NEGLIGIBLE
                beta[j, b] = 1.0 / (norm * norm - alpha * x0) if reflect else 0.0
                sub[j, b] = alpha if reflect else x0
                R[j, j + 1, b] = x0 - alpha
            for i in range(j + 1, L):  # w = beta A22 u
                for b in range(n):
                    w[i, b] = 0.0
                for k in range(j + 1, L):
                    for b in range(n):
                        w[i, b] += A[i, k, b] * R[j, k, b]
                for b in range(n):
                    w[i, b] *= beta[j, b]
            half = lane[1]  # w -= (beta / 2) (u . w) u
            half[:n] = 0.0
            for i in range(j + 1, L):
                for b in range(n):
                    half[b] += w[i, b] * R[j, i, b]
            for b in range(n):
                half[b] *= 0.5 * beta[j, b]
            for i in range(j + 1, L):
                for b in range(n):
                    w[i, b] -= half[b] * R[j, i, b]
            for i in range(j + 1, L):  # A22 -= u w.T + w u.T
                for k in range(j + 1, L):
                    for b in range(n):
                        A[i, k, b] -= R[j, i, b] * w[k, b] + w[i, b] * R[j, k, b]
        for b in range(n):
            sub[L - 2, b] = A[L - 1, L - 2, b]
            sub[L - 1, b] = 0.0
        for i in range(L):
            for b in range(n):
                diag[i, b] = A[i, i, b]
                e2[i, b] = sub[i, b] * sub[i, b]
        # -- Laguerre's iteration for the largest eigenvalue x of T.
        x[:n] = 0.0
        for i in range(L):
            for b in range(n):
                off = abs(sub[i, b]) + (abs(sub[i - 1, b]) if i > 0 else 0.0)
                x[b] = max(x[b], diag[i, b] + off)
        for b in range(n):
            x[b] = 1.001 * x[b] + 1e-300  # strictly above the spectrum
            done[b] = False
        # Pivots q of x I - T and their derivatives da, db in x give G = sum da/q = p'/p
        # and H = sum (da/q)**2 - db/q = (p'/p)**2 - p''/p for p(x) = det(x I - T).
        r, da, db, G, H = lane[0], lane[1], lane[2], lane[3], lane[4]
        for _ in range(_MAX_LAGUERRE):
            for b in range(n):
                q = x[b] - diag[0, b]
                ok[b] = q > 0.0
                r[b] = 1.0 / q
                da[b] = 1.0
                db[b] = 0.0
                G[b] = r[b]
                H[b] = r[b] * r[b]
            for i in range(1, L):
                for b in range(n):
                    rr = r[b] * r[b]
                    db[b] = e2[i - 1, b] * (db[b] * rr - 2.0 * da[b] * da[b] * rr * r[b])
                    da[b] = 1.0 + e2[i - 1, b] * da[b] * rr
                    q = x[b] - diag[i, b] - e2[i - 1, b] * r[b]
                    ok[b] = ok[b] and q > 0.0
                    r[b] = 1.0 / q
                    G[b] += da[b] * r[b]
                    H[b] += da[b] * da[b] * r[b] * r[b] - db[b] * r[b]
            n_open = 0
            for b in range(n):
                step = L / (G[b] + math.sqrt(max((L - 1) * (L * H[b] - G[b] * G[b]), 0.0)))
                # A pivot <= 0: x is the eigenvalue to rounding. Stop there too.
                move = ok[b] and step > 0.0 and not done[b]
                if move:
                    x[b] -= step
                done[b] = done[b] or not move or step <= 4.0 * eps * x[b]
                n_open += not done[b]
            if n_open == 0:
                break
        # -- Inverse iteration: inv_piv = 1 / D, lower = -(sub-diagonal of L).
        inv_piv, lower, piv = w, e2, lane[0]
        for b in range(n):
            piv[b] = x[b] - diag[0, b]
        for i in range(L):
            for b in range(n):
                tiny = eps * max(x[b], 1e-300)
                inv_piv[i, b] = 1.0 / (piv[b] if abs(piv[b]) >= tiny else tiny)
            if i < L - 1:
                for b in range(n):
                    lower[i, b] = sub[i, b] * inv_piv[i, b]
                    piv[b] = x[b] - diag[i + 1, b] - sub[i, b] * lower[i, b]
        for i in range(L):
            start = 1.0 + 0.5 * ((0.618034 * i) % 1.0)  # a fixed, generic start vector
            for b in range(n):
                v[i, b] = start
        norm = lane[1]
        for _ in range(2):  # the shift is the eigenvalue to rounding: two solves suffice
            for i in range(1, L):
                for b in range(n):
                    v[i, b] += lower[i - 1, b] * v[i - 1, b]
            for i in range(L):
                for b in range(n):
                    v[i, b] *= inv_piv[i, b]
            for i in range(L - 2, -1, -1):
                for b in range(n):
                    v[i, b] += lower[i, b] * v[i + 1, b]
            norm[:n] = 0.0
            for i in range(L):
                for b in range(n):
                    norm[b] += v[i, b] * v[i, b]
            for b in range(n):
                norm[b] = 1.0 / math.sqrt(norm[b])
            for i in range(L):
                for b in range(n):
                    v[i, b] *= norm[b]
        # -- Back to the basis of M: v = H_0 H_1 ... H_{L-3} v.
        acc = lane[0]
        for j in range(L - 3, -1, -1):
            acc[:n] = 0.0
            for i in range(j + 1, L):
                for b in range(n):
                    acc[b] += R[j, i, b] * v[i, b]
            for b in range(n):
                acc[b] *= beta[j, b]
            for i in range(j + 1, L):
                for b in range(n):
                    v[i, b] -= acc[b] * R[j, i, b]
        # -- Orthogonal to the previous components (twice: Gram-Schmidt's loss of
        # orthogonality is then at rounding level). The deflated M is exact only to
        # about eps * trace(C), so a weak component's eigenvector may lean on the
        # strong ones; orthogonal, the rows of U still give a projection, and the
        # output error stays below the weak component's share. A v left with no new
        # direction ends the components of its lane.
        dot, norm = lane[0], lane[1]
        for _ in range(2):
            for p in range(c):
                dot[:n] = 0.0
                for i in range(L):
                    for b in range(n):
                        dot[b] += U[p, i, b] * v[i, b]
                for i in range(L):
                    for b in range(n):
                        v[i, b] -= dot[b] * U[p, i, b]
        norm[:n] = 0.0
        for i in range(L):
            for b in range(n):
                norm[b] += v[i, b] * v[i, b]
        for b in range(n):
            norm[b] = math.sqrt(norm[b])
            if not norm[b] > 1e-3:
                rank[b] = min(rank[b], c)
                norm[b] = 1.0
            norm[b] = 1.0 / norm[b]
        for i in range(L):
            for b in range(n):
                v[i, b] *= norm[b]
                U[c, i, b] = v[i, b]
        if c < n_components - 1:  # M -= v g.T + g v.T with g = M v - (v.M v / 2) v
            g = w
            for i in range(L):
                for b in range(n):
                    g[i, b] = 0.0
                for j in range(L):
                    for b in range(n):
                        g[i, b] += M[i, j, b] * v[j, b]
            half = lane[0]
            half[:n] = 0.0
            for i in range(L):
                for b in range(n):
                    half[b] += v[i, b] * g[i, b]
            for i in range(L):
                for b in range(n):
                    g[i, b] -= 0.5 * half[b] * v[i, b]
            for i in range(L):
                for j in range(L):
                    for b in range(n):
                        M[i, j, b] -= v[i, b] * g[j, b] + g[i, b] * v[j, b]


@njit(cache=True, error_model="numpy")
def _diagonal_average(x, n, U, rank, y):
    """``y[:, b]``: anti-diagonal averages of ``U.T U traj`` for the first ``rank[b]``
    rows of ``U[:, :, b]`` (orthonormal eigenvectors) and the trajectory matrix of
    ``x[:, b]``.

    Times covered by all L trajectory rows get a symmetric ``2L - 1``-tap filter (taps:
    diagonal sums of ``U.T U``); the first and last ``L - 1`` times are summed from
    the trajectory columns that reach them.
    """
    T = x.shape[0]
    L = U.shape[1]
    K = T - L + 1
    B = x.shape[1]
    taps = np.zeros((L, B))
    coef = np.empty(B)
    for c in range(U.shape[0]):
        for s in range(L):
            for i in range(L - s):
                for b in range(n):
                    if c < rank[b]:
                        taps[s, b] += U[c, i, b] * U[c, i + s, b]
    for t in range(T):
        for b in range(n):
            y[t, b] = 0.0
    for t in range(L - 1, K):  # interior: every trajectory row covers t
        for b in range(n):
            y[t, b] = taps[0, b] * x[t, b]
        for s in range(1, L):
            for b in range(n):
                y[t, b] += taps[s, b] * (x[t - s, b] + x[t + s, b])
    # Edges: trajectory columns j reach times i + j < L - 1 or > K - 1.
    left = min(L - 1, K)
    for j in range(K):
        if left <= j < max(K - L + 1, left):
            continue  # these columns only reach interior times
        lo = min(L, max(L - 1 - j, 0))  # rows i < lo reach the first L - 1 times
        hi = max(K - j, lo)  # rows i >= hi reach the last L - 1 times
        for c in range(U.shape[0]):
            for b in range(n):
                coef[b] = 0.0
            for i in range(L):
                for b in range(n):
                    coef[b] += U[c, i, b] * x[i + j, b]
            for b in range(n):
                if c >= rank[b]:
                    coef[b] = 0.0
            for i in range(lo):
                for b in range(n):
                    y[i + j, b] += U[c, i, b] * coef[b]
            for i in range(hi, L):
                for b in range(n):
                    y[i + j, b] += U[c, i, b] * coef[b]
    for t in range(T):
        weight = 1.0 / min(t + 1, L, K, T - t)  # number of trajectory entries of t
        for b in range(n):
            y[t, b] *= weight
