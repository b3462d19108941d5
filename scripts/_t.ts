import {getLlama, resolveChatWrapper} from "node-llama-cpp";
const llama = await getLlama({gpu: false, maxThreads: 1});
const model = await llama.loadModel({modelPath: process.argv[2]!});
console.log(model.tokenize("Once upon a time the dog said hello"), resolveChatWrapper(model)?.wrapperName);
const ctx = await model.createContext({contextSize: 512, threads: 1, flashAttention: false});
const seq = ctx.getSequence();
const out: number[] = []; const t0 = performance.now();
for await (const t of seq.evaluate(model.tokenize("Once upon a time"), {temperature: 0})) { out.push(t); if (out.length >= 64) break; }
console.log(out.length, (out.length / (performance.now() - t0) * 1000).toFixed(0), "tok/s", JSON.stringify(model.detokenize(out as any)));
process.exit(0);
