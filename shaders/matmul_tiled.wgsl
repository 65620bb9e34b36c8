// matmul, tiled variant: the classic GPU kernel. A workgroup of WGX×WGY invocations computes a BM×BN block of
// C (BM = TM·WGY, BN = TN·WGX); each invocation a TM×TN sub-block at rows ty + WGY·i and columns tx + WGX·j
// (strided, so neighbouring invocations touch neighbouring words of workgroup memory). K is walked in steps of
// BK: the A and B tiles are staged in workgroup memory (zero-padded past the matrix edges), with barriers.
// 'tiled' = 4×4 per invocation, 16×16 invocations (a 64×64 block, BK 16); 'tiled@8x8/16x16' = the larger
// 128×128 block (BK 8) that real GPUs with many registers prefer. The inner product is generated unrolled
// (matmul.ts tiledBody: accumulators c{i}_{j} as scalars, every K step written out), since a shader compiler may
// spill a dynamically indexed array to local memory. Slow on lavapipe, where barriers are expensive.
// Layout and transposes as in matmul_naive.wgsl.
//#include "matmul_io"
const TM = {{TM}}u;
const TN = {{TN}}u;
const WGX = {{WGX}}u;
const WGY = {{WGY}}u;
const BK = {{BK}}u;
const BM = TM * WGY;
const BN = TN * WGX;
const NT = WGX * WGY;   // invocations per workgroup
// Row strides of the staged tiles, padded by 32/BK words: where a staging loop walks k fastest (A untransposed,
// B transposed: one row of the matrix is contiguous along k), a 32-invocation warp stores BK consecutive k of
// 32/BK rows, i.e. words kk·stride + mm. Unpadded (stride BM = 64) all BK of a row would fall in one of the 32
// banks of a GPU's shared memory (a BK-way conflict); padded they cover the 32 banks once whenever BM (BN) is a
// multiple of 4 (BK 16) or of 8 (BK 8), as in every shape used (test/matmul.test.ts checks them).
const SA = BM + {{PAD}}u;
const SB = BN + {{PAD}}u;

var<workgroup> As: array<f32, BK * SA>;   // [k][m], row stride SA
var<workgroup> Bs: array<f32, BK * SB>;   // [k][n], row stride SB

@compute @workgroup_size(WGX, WGY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
  let M = P.M;
  let N = P.N;
  let K = P.K;
  let t = wg.z + P.z0;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let aBase = t * M * K;
  let bBase = t * K * N * P.bBatched;
  let li = lid.y * WGX + lid.x;
{{DECL}}
  for (var k0 = 0u; k0 < K; k0 += BK) {
    // Stage the tiles; consecutive invocations read consecutive addresses in either layout.
    for (var e = li; e < BK * BM; e += NT) {
      var mm = e / BK;
      var kk = e % BK;
      if (TRANS_A) { kk = e / BM; mm = e % BM; }
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < M && k < K) {
        var ai = aBase + m * K + k;
        if (TRANS_A) { ai = aBase + k * M + m; }
        v = a[ai];
      }
      As[kk * SA + mm] = v;
    }
    for (var e = li; e < BK * BN; e += NT) {
      var kk = e / BN;
      var nn = e % BN;
      if (TRANS_B) { nn = e / BK; kk = e % BK; }
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < N && k < K) {
        var bi = bBase + k * N + n;
        if (TRANS_B) { bi = bBase + n * K + k; }
        v = b[bi];
      }
      Bs[kk * SB + nn] = v;
    }
    workgroupBarrier();
{{INNER}}
    workgroupBarrier();
  }
{{STORE}}
}

//#include "matmul_store"
