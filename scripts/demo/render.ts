// Draws a Vega-Lite spec to PNG, headless and in-process: Vega-Lite compiles it to Vega, Vega
// renders SVG (no canvas, no browser), resvg rasterizes that with the DejaVu fonts of the
// dejavu-fonts-ttf package loaded by path, never the machine's fonts (a CI machine may have none).
import { createRequire } from "node:module";
import { Resvg } from "@resvg/resvg-js";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

const require = createRequire(import.meta.url);
export const FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"].map((file) =>
  require.resolve(`dejavu-fonts-ttf/ttf/${file}`),
);

/** The spec as SVG text (fonts named, not embedded). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The spec as PNG bytes, scaled to `width` pixels (the height keeps the chart's aspect). */
export async function renderPng(spec: TopLevelSpec, options: { width: number }): Promise<Buffer> {
  const svg = await renderSvg(spec);
  const image = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "width", value: options.width },
    font: { fontFiles: FONT_FILES, loadSystemFonts: false, defaultFontFamily: "DejaVu Sans" },
  }).render();
  return image.asPng();
}
