/**
 * A small SVG line chart: one panel per series, sharing the time axis. Enough for docs; no
 * dependency (the charting libraries on npm pull in a browser DOM or canvas bindings).
 */
export interface Series {
    label: string;
    unit: string;
    points: {t: number; value: number}[];
    /** Draw as steps (a level) instead of a line. */
    steps?: boolean;
    /** Names for integer values (e.g. power levels) on the y axis. */
    valueNames?: string[];
    color: string;
}

const WIDTH = 900;
const PANEL = 150;
const LEFT = 90;
const RIGHT = 20;
const TOP = 30;

export function lineChart(title: string, series: Series[], duration: number): string {
    const height = TOP + series.length * (PANEL + 30) + 30;
    const x = (t: number) => LEFT + (t / duration) * (WIDTH - LEFT - RIGHT);
    const parts: string[] = [
        `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif" font-size="12">`,
        `<rect width="100%" height="100%" fill="white"/>`,
        `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14">${escape(title)}</text>`
    ];
    series.forEach((entry, index) => {
        const top = TOP + index * (PANEL + 30);
        const values = entry.points.map((point) => point.value);
        const max = entry.valueNames != null ? entry.valueNames.length - 1 : Math.max(1, ...values) * 1.1;
        const y = (value: number) => top + PANEL - (value / max) * PANEL;
        parts.push(`<rect x="${LEFT}" y="${top}" width="${WIDTH - LEFT - RIGHT}" height="${PANEL}" fill="none" stroke="#ccc"/>`);
        parts.push(`<text x="10" y="${top + 14}">${escape(entry.label)}</text>`);
        parts.push(`<text x="10" y="${top + 30}" fill="#666">${escape(entry.unit)}</text>`);
        const ticks = entry.valueNames != null ? entry.valueNames.map((name, value) => ({value, name})) : [0, max / 2, max].map((value) => ({value, name: value.toFixed(max < 10 ? 1 : 0)}));
        for (const tick of ticks)
            parts.push(`<text x="${LEFT - 6}" y="${y(tick.value) + 4}" text-anchor="end" fill="#666">${escape(tick.name)}</text>`);
        const path = entry.points.map((point, at) => {
            const previous = entry.points[at - 1];
            if (at === 0) return `M${x(point.t).toFixed(1)},${y(point.value).toFixed(1)}`;
            return entry.steps && previous != null
                ? `H${x(point.t).toFixed(1)}V${y(point.value).toFixed(1)}`
                : `L${x(point.t).toFixed(1)},${y(point.value).toFixed(1)}`;
        }).join("");
        parts.push(`<path d="${path}" fill="none" stroke="${entry.color}" stroke-width="2"/>`);
    });
    const axis = TOP + series.length * (PANEL + 30);
    for (let t = 0; t <= duration; t += Math.max(1, Math.round(duration / 10)))
        parts.push(`<text x="${x(t)}" y="${axis}" text-anchor="middle" fill="#666">${t}s</text>`);
    parts.push("</svg>");
    return parts.join("\n");
}

function escape(text: string) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
