// The LU-parameterised weight of Glow's 1x1 convolution (the CUDA twin of kernels/reference/lu.py; Kingma &
// Dhariwal 2018, section 3.2, eq. 10):
//
//   lu_weight:           W = P L U~,  L = I + strictly-lower(lower),  U~ = strictly-upper(upper) + diag(s),
//                        s = sign_s * exp(log_s)
//   lu_weight_backward:  A = P^T gW;  g_lower = strictly-lower(A U~^T),  g_upper = strictly-upper(L^T A),
//                        g_log_s = diag(L^T A) * s
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text (and nothing else):
// one source, two compiled modules, cached by (file, dtype) in kernels/cuda/loader.py.
//
// C is small (Glow: 4 to a few hundred channels) and this runs once per step, not per sample: each kernel is
// ONE block, whose threads stride over the C * C entries in two phases separated by __syncthreads() (which
// also makes the first phase's global-memory writes visible to the whole block). The first phase writes an
// intermediate C x C matrix into a scratch array the host allocates: M = L U~ (weight) or A = P^T gW
// (backward). The loops use the triangles (only k <= min(i, j) in (L U~)[i, j], only k >= j in (A U~^T)[i, j],
// only k >= i in (L^T A)[i, j]) and skip P's zero entries, exactly as the Numba kernel kernels/cpu/lu.py.

__device__ __forceinline__ real_t scale(const real_t* sign_s, const real_t* log_s, int k) {
    return sign_s[k] * exp(log_s[k]);
}

extern "C" __global__ void lu_weight(const real_t* __restrict__ perm, const real_t* __restrict__ lower,
                                     const real_t* __restrict__ upper, const real_t* __restrict__ sign_s,
                                     const real_t* __restrict__ log_s, real_t* m, real_t* __restrict__ w, int c) {
    for (int idx = threadIdx.x; idx < c * c; idx += blockDim.x) {   // M = L U~
        int i = idx / c, j = idx % c;
        real_t total = (real_t)0;
        for (int k = 0; k < min(i, j); ++k) total += lower[i * c + k] * upper[k * c + j];
        if (i < j) total += upper[i * c + j];                        // k = i: L[i, i] = 1
        else if (i == j) total += scale(sign_s, log_s, i);           // k = i: U~[i, i] = s[i]
        else total += lower[i * c + j] * scale(sign_s, log_s, j);    // k = j: U~[j, j] = s[j]
        m[idx] = total;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < c * c; idx += blockDim.x) {   // W = P M
        int i = idx / c, j = idx % c;
        real_t total = (real_t)0;
        for (int k = 0; k < c; ++k) {
            real_t p = perm[i * c + k];
            if (p != (real_t)0) total += p * m[k * c + j];
        }
        w[idx] = total;
    }
}

extern "C" __global__ void lu_weight_backward(const real_t* __restrict__ perm, const real_t* __restrict__ lower,
                                              const real_t* __restrict__ upper, const real_t* __restrict__ sign_s,
                                              const real_t* __restrict__ log_s, const real_t* __restrict__ gw,
                                              real_t* a, real_t* __restrict__ g_lower,
                                              real_t* __restrict__ g_upper, real_t* __restrict__ g_log_s, int c) {
    for (int idx = threadIdx.x; idx < c * c; idx += blockDim.x) {   // A = P^T gW: A[k, j] = sum_i P[i, k] gW[i, j]
        int k = idx / c, j = idx % c;
        real_t total = (real_t)0;
        for (int i = 0; i < c; ++i) {
            real_t p = perm[i * c + k];
            if (p != (real_t)0) total += p * gw[i * c + j];
        }
        a[idx] = total;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < c * c; idx += blockDim.x) {
        int i = idx / c, j = idx % c;
        if (i > j) {   // (A U~^T)[i, j] = A[i, j] s[j] + sum_{k > j} A[i, k] upper[j, k]
            real_t total = a[i * c + j] * scale(sign_s, log_s, j);
            for (int k = j + 1; k < c; ++k) total += a[i * c + k] * upper[j * c + k];
            g_lower[idx] = total;
            g_upper[idx] = (real_t)0;
        } else {       // (L^T A)[i, j] = A[i, j] + sum_{k > i} lower[k, i] A[k, j]
            real_t total = a[i * c + j];
            for (int k = i + 1; k < c; ++k) total += lower[k * c + i] * a[k * c + j];
            g_lower[idx] = (real_t)0;
            g_upper[idx] = i == j ? (real_t)0 : total;
            if (i == j) g_log_s[i] = total * scale(sign_s, log_s, i);
        }
    }
}
