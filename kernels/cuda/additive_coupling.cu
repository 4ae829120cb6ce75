// Additive coupling, join part (the CUDA twin of kernels/reference/additive_coupling.py; NICE, Dinh et al.
// 2014, eq. 5), with channels [start, start + C_b) of axis 1 the transformed block:
//
//   forward:           y = x,  y[:, start:start + C_b] += shift        (sign = +1; log-det 0)
//   inverse:           x = y,  x[:, start:start + C_b] -= shift        (sign = -1)
//   forward_backward:  dx = gy (no kernel),  dshift =  gy[:, start:start + C_b]   (sign = +1)
//   inverse_backward:  dy = gx (no kernel),  dshift = -gx[:, start:start + C_b]   (sign = -1)
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text (and nothing else):
// one source, two compiled modules, cached by (file, dtype) in kernels/cuda/loader.py.
//
// Layout: x is a C-ordered (N, M) array with M = C * P elements per sample (the wrapper flattens the channel
// and pixel axes), shift a C-ordered (N, M_b) array with M_b = C_b * P. Channels [start, start + C_b) of a
// sample are then the contiguous run [offset, offset + M_b) of its row, offset = start * P. One thread per
// output element in a grid-stride loop, so neighbouring threads read and write neighbouring addresses.

// y[i] = x[i] + sign * shift[n, j - offset] inside the run, x[i] outside: one pass writing all of y.
extern "C" __global__ void additive_coupling_map(const real_t* __restrict__ x, const real_t* __restrict__ shift,
                                                 real_t* __restrict__ y, long long m, long long offset,
                                                 long long mb, long long size, int sign) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        long long n = i / m;
        long long k = i - n * m - offset;             // position inside the transformed run
        real_t v = x[i];
        if (k >= 0 && k < mb) {
            real_t s = shift[n * mb + k];
            v = sign > 0 ? v + s : v - s;
        }
        y[i] = v;
    }
}

// out[n, k] = sign * g[n, offset + k] for k < M_b: the shift's gradient, one thread per element of out.
extern "C" __global__ void additive_coupling_block(const real_t* __restrict__ g, real_t* __restrict__ out,
                                                   long long m, long long offset, long long mb, long long size,
                                                   int sign) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        long long n = i / mb;
        real_t v = g[n * m + offset + (i - n * mb)];
        out[i] = sign > 0 ? v : -v;
    }
}
