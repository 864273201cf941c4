/**
 * The shop's catalogue: the price list the order service checks orders against and the stock the
 * inventory service seeds its table with (once: a restart keeps the stock it has).
 */
export interface CatalogueItem {
  readonly sku: string;
  readonly name: string;
  /** Price in cents. */
  readonly price: number;
  /** Stock the inventory table starts with. */
  readonly stock: number;
}

export const catalogue: readonly CatalogueItem[] = [
  { sku: 'coffee-beans', name: 'Coffee beans, 1 kg', price: 2_490, stock: 5_000 },
  { sku: 'tea-earl-grey', name: 'Earl Grey tea, 250 g', price: 650, stock: 5_000 },
  { sku: 'mug-blue', name: 'Blue mug', price: 900, stock: 2_000 },
  { sku: 'teapot-cast-iron', name: 'Cast-iron teapot', price: 3_900, stock: 500 },
  { sku: 'grinder-manual', name: 'Manual coffee grinder', price: 4_500, stock: 300 },
  { sku: 'kettle-gooseneck', name: 'Gooseneck kettle (limited)', price: 5_900, stock: 3 },
];

const bySku = new Map(catalogue.map((item) => [item.sku, item]));

/** The catalogue entry of `sku`, or undefined for an unknown one. */
export function findSku(sku: string): CatalogueItem | undefined {
  return bySku.get(sku);
}

/** Cents as a decimal amount of currency units (2490 → 24.9), for JSON and emails. */
export function toAmount(cents: number): number {
  return Math.round(cents) / 100;
}

/** Cents as text (2490 → "24.90"). */
export function formatAmount(cents: number): string {
  return (cents / 100).toFixed(2);
}
