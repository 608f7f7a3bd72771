import * as fs from "fs";
import { lab, labBoxes, labConfig, scrubBox, TestProject } from "../test/e2e/engine";
async function main() {
    await lab("up", "2");
    const boxes = await labBoxes();
    for (const b of boxes) await scrubBox(b.name);
    const project = new TestProject("probe-1x16");
    await project.init(boxes[0].privateKeyPath);
    const { defaults, boxes: declared } = labConfig(boxes, { [boxes[0].name]: Number(process.env.N ?? 16) });
    project.configure(defaults, declared);
    let t = Date.now(); await project.pulumiOk(["preview"]); console.log("preview", (Date.now() - t) / 1000);
    t = Date.now(); await project.upOk(); console.log("up", (Date.now() - t) / 1000);
    const r = await project.pulumiOk(["stack", "export"]);
    fs.writeFileSync("/tmp/mb/state.json", r);
    await project.destroyOk();
    await project.remove();
    for (const b of boxes) await scrubBox(b.name);
}
main().catch((e) => { console.error(e); process.exit(1); });
