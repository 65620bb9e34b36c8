// Class-label presets. Pure (no Node imports): the browser uses them too.
//
// 'wbc14' is CelluScan's 14 white-blood-cell classes (the model's class order: index i ↔ WBC14[i].name),
// each with a one-line description for reports. 'generic' (or any preset-less model) gets class_0, class_1, …

export interface LabelInfo {
  name: string;
  description: string;
}

/** The 14 white-blood-cell types CelluScan classifies, in class-index order. */
export const WBC14: readonly LabelInfo[] = [
  { name: 'neutrophil_segmented', description: 'mature neutrophil: nucleus of 2–5 lobes joined by thin strands, pale pink granular cytoplasm' },
  { name: 'neutrophil_band', description: 'band neutrophil: unsegmented, horseshoe- or C-shaped nucleus of even width; a left-shift marker' },
  { name: 'lymphocyte', description: 'small lymphocyte: round dense nucleus filling most of the cell, thin rim of blue cytoplasm' },
  { name: 'lymphocyte_reactive', description: 'reactive (variant) lymphocyte: larger, abundant blue cytoplasm that scallops around neighbouring red cells' },
  { name: 'lymphocyte_large_granular', description: 'large granular lymphocyte (NK/cytotoxic T): ample pale cytoplasm with a few coarse azurophilic granules' },
  { name: 'monocyte', description: 'monocyte: largest normal leukocyte, folded or kidney-shaped nucleus, grey-blue cytoplasm, often vacuolated' },
  { name: 'eosinophil', description: 'eosinophil: usually bilobed nucleus, cytoplasm packed with large orange-red granules' },
  { name: 'basophil', description: 'basophil: nucleus obscured by coarse dark purple-black granules' },
  { name: 'metamyelocyte', description: 'metamyelocyte: kidney-bean nucleus (indentation under half its width), specific granules; immature granulocyte' },
  { name: 'myelocyte', description: 'myelocyte: round-oval eccentric nucleus without nucleoli, specific granules appearing; immature granulocyte' },
  { name: 'promyelocyte', description: 'promyelocyte: large cell, nucleus with nucleoli, abundant coarse azurophilic (primary) granules, perinuclear clear zone' },
  { name: 'blast', description: 'blast (myeloblast/lymphoblast): high nuclear-cytoplasmic ratio, fine open chromatin, visible nucleoli; always flag' },
  { name: 'plasma_cell', description: 'plasma cell: eccentric nucleus with clock-face chromatin, deep blue cytoplasm with a pale perinuclear Golgi zone' },
  { name: 'smudge_cell', description: 'smudge (basket) cell: ruptured leukocyte, a smear of nuclear material without cytoplasm (common in CLL)' },
];

export const LABEL_PRESETS = {
  wbc14: WBC14.map((l) => l.name),
} as const;

export type LabelPresetName = keyof typeof LABEL_PRESETS | 'generic';

/** class_0 … class_{n-1}. */
export function genericLabels(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `class_${i}`);
}

/** The one-line description of a label, when it is one of a preset's. */
export function describeLabel(name: string): string | undefined {
  return WBC14.find((l) => l.name === name)?.description;
}

export function isLabelPreset(name: string): name is LabelPresetName {
  return name === 'generic' || name in LABEL_PRESETS;
}

/** A preset's labels ('generic' needs the class count); throws naming the known presets. */
export function presetLabels(name: string, numClasses?: number): string[] {
  if (name === 'generic') {
    if (numClasses === undefined) throw new Error("label preset 'generic' needs the number of classes");
    return genericLabels(numClasses);
  }
  const p = (LABEL_PRESETS as Record<string, readonly string[]>)[name];
  if (!p) throw new Error(`unknown label preset '${name}' (known: ${[...Object.keys(LABEL_PRESETS), 'generic'].join(', ')})`);
  return [...p];
}

/**
 * Labels from a text file's contents: a JSON array of strings, or one label per line (blank lines and
 * lines starting with '#' ignored; "name<TAB or ' - '>description" keeps the name only).
 */
export function parseLabelsText(text: string, what = 'labels file'): string[] {
  const t = text.trim();
  if (t.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new Error(`${what}: not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`${what}: a JSON labels file must be an array of strings`);
    return v as string[];
  }
  const out = t
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(/\t| - /)[0].trim());
  if (!out.length) throw new Error(`${what}: no labels found`);
  return out;
}

/** Check a label list against a class count (one error naming both numbers). */
export function checkLabelCount(labels: readonly string[], numClasses: number, what = 'labels'): void {
  if (labels.length !== numClasses) throw new Error(`${what}: ${labels.length} labels given but the model has ${numClasses} classes`);
}
