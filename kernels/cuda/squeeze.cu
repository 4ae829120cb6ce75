// Squeeze and unsqueeze (the CUDA twin of kernels/reference/squeeze.py; RealNVP, Dinh et al. 2017, §3.6;
// Glow's squeeze2d):
//
//   squeeze:    y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]     (N, C, H, W) -> (N, 4C, H/2, W/2)
//   unsqueeze:  the inverse permutation                                   (N, 4C, H, W) -> (N, C, 2H, 2W)
//
// A permutation: log-det 0, and the backward of each is the other applied to the gradient (the Jacobian is a
// permutation matrix, its transpose its inverse), so there is no backward kernel.
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text (and nothing else):
// one source, two compiled modules, cached by (file, dtype) in kernels/cuda/loader.py.
//
// Both kernels are gathers: one thread per output element (C-ordered, so writes are coalesced) computes the
// index of the input element it copies. Grid-stride loops cover any size.

#define FACTOR 2     // side of the folded spatial block
#define BLOCK 4      // FACTOR * FACTOR: channels each input channel becomes

// x: (N, C, H, W); y: (N, 4C, H/2, W/2); size = N * C * H * W.
extern "C" __global__ void squeeze_forward(const real_t* __restrict__ x, real_t* __restrict__ y,
                                           long long channels, long long height, long long width, long long size) {
    long long half_h = height / FACTOR, half_w = width / FACTOR;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < size; o += (long long)gridDim.x * blockDim.x) {
        long long j = o % half_w;
        long long rest = o / half_w;
        long long i = rest % half_h;
        rest /= half_h;
        long long q = rest % (channels * BLOCK);      // output channel 4c + 2di + dj
        long long n = rest / (channels * BLOCK);
        long long c = q / BLOCK, di = (q % BLOCK) / FACTOR, dj = q % FACTOR;
        y[o] = x[((n * channels + c) * height + FACTOR * i + di) * width + FACTOR * j + dj];
    }
}

// y: (N, 4C, H/2, W/2); x: (N, C, H, W); channels, height, width are x's; size = N * C * H * W.
extern "C" __global__ void squeeze_inverse(const real_t* __restrict__ y, real_t* __restrict__ x,
                                           long long channels, long long height, long long width, long long size) {
    long long half_h = height / FACTOR, half_w = width / FACTOR;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < size; o += (long long)gridDim.x * blockDim.x) {
        long long w = o % width;
        long long rest = o / width;
        long long h = rest % height;
        rest /= height;
        long long c = rest % channels;
        long long n = rest / channels;
        long long q = c * BLOCK + FACTOR * (h % FACTOR) + w % FACTOR;
        x[o] = y[((n * channels * BLOCK + q) * half_h + h / FACTOR) * half_w + w / FACTOR];
    }
}
