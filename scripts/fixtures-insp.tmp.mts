import {readGgufFileInfo} from "node-llama-cpp";
const info = await readGgufFileInfo(process.argv[2]!);
console.log(info.version, info.tensorCount, info.infoEndOffset, info.metadataSize);
const m: any = info.metadata;
const short = (v: any): any => Array.isArray(v) ? `[${v.length}] ${JSON.stringify(v.slice(0,5))}` : (v && typeof v === "object") ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, short(x)])) : v;
console.dir(short(m), {depth: 5});
for (const t of info.tensorInfo!) console.log(t.name, t.dimensions, t.ggmlType, t.offset, t.fileOffset);
