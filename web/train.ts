// In-page training of a tiny ViT (optional section of the page; filled in later).
export interface TrainingHooks {
  enqueue: (job: () => Promise<void>) => Promise<void>;
  ready: () => boolean;
}

export function setupTraining(_hooks: TrainingHooks): void {
  /* no training section yet */
}
