// `celluscan info`: the adapter, its features and the limits that matter.
import { cachedMatmulProducts, describeMatmulChoice, formTransposes, isMatmulTuned, MATMUL_FORMS, matmulVariantFor, plainMinK } from '../kernels/autotune.js';
import { WANTED_FEATURES, initGpu, keyLimits } from '../kernels/device.js';
import { defaultAttentionRule, tunedAttentionChoices } from '../vit/attentionTuning.js';
import { describeRowRule } from '../kernels/softmax.js';
import { tunedRowChoices } from '../kernels/rowTuning.js';

export async function adapterInfo() {
  const g = await initGpu();
  return {
    adapter: g.info,
    adapterKey: g.adapterKey,
    features: [...g.features].sort(),
    adapterFeatures: [...g.adapter.features].sort(),
    missingWanted: WANTED_FEATURES.filter((f) => !g.features.has(f)),
    // the size the subgroup kernels run with; null: none run (no 'subgroups', no fixed size, or the layout probe failed)
    subgroupSize: g.subgroupSize,
    limits: keyLimits(g.limits),
    // What the kernels default to here: the table, or what `celluscan tune` cached (loaded when the GPU started).
    kernels: {
      matmul: describeMatmulChoice(g.adapterKey),
      // the variant per transpose form (plain A·B, tA = Aᵀ·B, tB = A·Bᵀ, tAtB)
      matmulForms: Object.fromEntries(MATMUL_FORMS.map((f) => [f, matmulVariantFor(g.adapterKey, ...formTransposes(f))])),
      // the default table's rule for long inner dimensions: these forms run through a plain-layout copy from this K
      matmulPlainFromK: plainMinK(g.adapterKey),
      matmulTuned: isMatmulTuned(g.adapterKey),
      // the products (M×N×K, transposes) that tune measured: one choice serves every model's products on this adapter
      matmulTunedOn: isMatmulTuned(g.adapterKey) ? ((await cachedMatmulProducts(g.adapterKey)) ?? null) : null,
      attentionDefault: defaultAttentionRule(g.adapterKey),
      attentionTuned: tunedAttentionChoices(g.adapterKey),
      // softmax and layernorm: the table's rule, and what a tune measured per kernel and row length (kernel:cols)
      rowsDefault: describeRowRule(g.adapterKey),
      rowsTuned: tunedRowChoices(g.adapterKey),
    },
  };
}

export function formatInfo(i: Awaited<ReturnType<typeof adapterInfo>>): string {
  const lines = [
    `adapter       ${i.adapter.description || i.adapter.device || '(no description)'}`,
    `vendor        ${i.adapter.vendor || '?'}   architecture ${i.adapter.architecture || '?'}   key ${i.adapterKey}${i.adapter.isFallbackAdapter ? '   (fallback/software adapter)' : ''}`,
    `features      ${i.features.join(', ')}`,
  ];
  if (i.missingWanted.length) lines.push(`not offered   ${i.missingWanted.join(', ')} (kernels use fallbacks)`);
  if (i.features.includes('subgroups')) {
    lines.push(`subgroups     ${i.subgroupSize !== null ? `${i.subgroupSize} lanes, laid out as the subgroup kernels assume` : 'no subgroup kernels here (no fixed size, or lanes not laid out as they assume)'}`);
  }
  const k = i.kernels;
  const tunedAtt = Object.entries(k.attentionTuned).map(([shape, c]) => `${shape}: ${c}`);
  lines.push(
    `matmul        ${k.matmul} (${
      k.matmulTuned
        ? `tuned by \`celluscan tune\`${k.matmulTunedOn?.length ? ` on ${k.matmulTunedOn.join(', ')}` : ''}; used for every model's products here: tune again with another --model to measure at its shapes`
        : "this adapter's default"
    })`,
  );
  lines.push(`attention     ${tunedAtt.length ? `tuned ${tunedAtt.join('; ')}; other shapes ` : ''}${k.attentionDefault} (default)`);
  const tunedRows = Object.entries(k.rowsTuned).map(([key, v]) => `${key}: ${v}`);
  lines.push(`row kernels   ${tunedRows.length ? `tuned ${tunedRows.join('; ')}; otherwise ` : ''}${k.rowsDefault} (default)`);
  lines.push('limits');
  for (const [k, v] of Object.entries(i.limits)) lines.push(`  ${k.padEnd(36)} ${v}`);
  return lines.join('\n');
}
