// Training recipes (`celluscan train --preset NAME`): a preset fills in every option the command line leaves
// unset (options given explicitly always win).
//
// fashion-mnist        From scratch on Fashion-MNIST (28×28 gray, replicated to RGB), the ≥ 90 % recipe. A small ViT
//                      sized for 28×28: patch 4 (49 tokens + class token), 4 layers, 4 heads, dim 64, MLP 128
//                      (~0.2M parameters), batch 128, AdamW lr 1e-3 (a from-scratch ViT this small tolerates a
//                      larger LR than fine-tuning's 3e-4) with weight decay 0.05 but none on norms and biases,
//                      linear warmup 500 steps then cosine to 0, label smoothing 0.1, gradient clipping at 1.0,
//                      'light' augmentation (horizontal flip, shifts of up to ±2 px), 30 epochs over 54 000 images
//                      (6 000 held out for validation). Expected accuracy, from the same recipe run in PyTorch
//                      (tools/torch_fmnist_recipe.py --patch 4 --augment light --epochs 30; our training arithmetic
//                      matches torch's to ~1e-7 per step): ≥ 90 % test from epoch 24 on, see
//                      docs/fashion-mnist-recipe.md. Costs ~3× the patch-7 model per image: hours on a CPU adapter.
// fashion-mnist-p7     The earlier, cheaper recipe: the patch-7 model (16 tokens + class token), no augmentation,
//                      15 epochs. 88.8 % test in PyTorch, 88.86 % in our full run here (72.6 min on lavapipe, 2 cores).
// fashion-mnist-quick  The patch-7 model for a few minutes on a CPU adapter: a stratified 5 % subset of every split
//                      (2 700 train, 300 val, 500 test images), 2 epochs of batch 64 (86 steps), warmup 10 steps,
//                      no augmentation — the README's main-job command: it shows the whole pipeline (data, training,
//                      plots, evaluation) rather than a final accuracy.
// celluscan            The seed's fine-tuning recipe: ViT-B/16 from converted torchvision ImageNet weights (--init,
//                      required), the 14 wbc14 classes at 224×224, AdamW lr 3e-4, weight decay 1e-2 on all
//                      parameters, constant LR, cross-entropy, batch 32, TrivialAugmentWide + horizontal flip,
//                      10 epochs, run in three stages over stratified subsets: --subset 0.05, then 0.2, then 1.
//                      Runs on any adapter; on a CPU adapter expect hours per epoch at full size.
import type { VitConfig } from '../vit/config.js';

export type AugmentMode = 'none' | 'light' | 'trivialaugment';

/** The options a preset may set (TrainOptions' names). */
export interface PresetOptions {
  data?: string;
  config?: VitConfig;
  model?: string;
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  schedule?: 'constant' | 'cosine';
  warmupSteps?: number;
  labelSmoothing?: number;
  clipGradNorm?: number;
  decayNormBias?: boolean;
  augment?: AugmentMode;
  subset?: number;
  valFraction?: number;
  labels?: string;
  requiresInit?: boolean;
  /** Mean/std over the Fashion-MNIST training images (gray, replicated to RGB). */
  mean?: number[];
  std?: number[];
}

export interface TrainPreset {
  name: string;
  summary: string;
  options: PresetOptions;
  /** Extra notes printed with the recipe (e.g. the staged subsets). */
  notes?: string[];
}

/** The patch-7 Fashion-MNIST model (quick and p7 presets, `bench train`): image 28 / patch 7 / 4 layers / 4 heads / dim 64 / MLP 128, 10 classes. */
export const FMNIST_VIT: VitConfig = {
  image_size: 28,
  patch_size: 7,
  num_layers: 4,
  num_heads: 4,
  hidden_dim: 64,
  mlp_dim: 128,
  num_classes: 10,
  dropout: 0,
  attention_dropout: 0,
  representation_size: null,
};

/** The ≥ 90 % Fashion-MNIST model: FMNIST_VIT with patch 4 (49 tokens). */
export const FMNIST_VIT_P4: VitConfig = { ...FMNIST_VIT, patch_size: 4 };

const FMNIST_COMMON = {
  data: 'fashion-mnist',
  batchSize: 128,
  lr: 1e-3,
  weightDecay: 0.05,
  decayNormBias: false,
  schedule: 'cosine',
  warmupSteps: 500,
  labelSmoothing: 0.1,
  clipGradNorm: 1,
  valFraction: 0.1,
} satisfies PresetOptions;

export const TRAIN_PRESETS: Record<string, TrainPreset> = {
  'fashion-mnist': {
    name: 'fashion-mnist',
    summary: 'small ViT (patch 4) from scratch on Fashion-MNIST, 30 epochs with flip/shift augmentation (≥90% test expected)',
    options: { ...FMNIST_COMMON, config: FMNIST_VIT_P4, epochs: 30, augment: 'light' },
  },
  'fashion-mnist-p7': {
    name: 'fashion-mnist-p7',
    summary: 'the cheaper patch-7 model, 15 epochs, no augmentation (~89% test; ~73 min on lavapipe)',
    options: { ...FMNIST_COMMON, config: FMNIST_VIT, epochs: 15, augment: 'none' },
  },
  'fashion-mnist-quick': {
    name: 'fashion-mnist-quick',
    summary: 'the patch-7 model for a few minutes on a CPU adapter (5% subset, 2 epochs)',
    options: { ...FMNIST_COMMON, config: FMNIST_VIT, epochs: 2, batchSize: 64, warmupSteps: 10, augment: 'none', subset: 0.05 },
  },
  celluscan: {
    name: 'celluscan',
    summary: "the seed's fine-tuning recipe: ViT-B/16 from torchvision weights (--init), wbc14, 224×224",
    options: {
      model: 'vit_b_16',
      labels: 'wbc14',
      epochs: 10,
      batchSize: 32,
      lr: 3e-4,
      weightDecay: 1e-2,
      decayNormBias: true,
      schedule: 'constant',
      warmupSteps: 0,
      labelSmoothing: 0,
      augment: 'trivialaugment',
      requiresInit: true,
    },
    notes: [
      'stages: run with --subset 0.05, then --subset 0.2 --init RUN_5/model.safetensors, then --subset 1 --init RUN_20/model.safetensors',
      '--init: torchvision ImageNet ViT-B/16 weights converted with `celluscan convert` (the 1000-class head is replaced: --new-head)',
    ],
  },
};

export function getPreset(name: string): TrainPreset {
  const p = TRAIN_PRESETS[name];
  if (!p) throw new Error(`unknown training preset '${name}' (known: ${Object.keys(TRAIN_PRESETS).join(', ')})`);
  return p;
}
