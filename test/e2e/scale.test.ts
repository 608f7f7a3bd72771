/**
 * Scale limits through the real engine: the config's maximum of 64 instances on one box, and a
 * stack of 16 boxes, deploy without connection failures (sshd's MaxStartups is the lab's default).
 */
import { afterAll, describe, expect, it } from "vitest";
import { lab, labBoxes, labConfig, managedFstabLines, overlayMounts, scrubBox, TestProject } from "./engine";

const projects: TestProject[] = [];

afterAll(async () => {
    for (const project of projects) {
        await project.destroyOk().catch(() => undefined);
        await project.remove();
    }
    await lab("down");
});

describe("scale", () => {
    it("64 instances on one box deploy, one fstab line each, and are destroyed again", async () => {
        await lab("down");
        await lab("up", "2");
        const boxes = await labBoxes();
        const project = new TestProject("scale64");
        projects.push(project);
        await project.init(boxes[0].privateKeyPath);
        const { defaults, boxes: declared } = labConfig(boxes, { box1: 64 });
        project.configure(defaults, declared);
        await project.upOk();
        expect(await overlayMounts("box1")).toHaveLength(64);
        expect(await managedFstabLines("box1")).toHaveLength(64);
        await project.destroyOk();
        expect(await overlayMounts("box1")).toEqual([]);
        expect(await managedFstabLines("box1")).toEqual([]);
        await scrubBox("box1");
    });

    it("a stack of 16 boxes deploys", async () => {
        await lab("down");
        await lab("up", "16");
        const boxes = await labBoxes();
        expect(boxes).toHaveLength(16);
        const project = new TestProject("scale16");
        projects.push(project);
        await project.init(boxes[0].privateKeyPath);
        const { defaults, boxes: declared } = labConfig(boxes, Object.fromEntries(boxes.map((b) => [b.name, 2])));
        project.configure(defaults, declared);
        await project.upOk();
        for (const box of boxes) {
            expect(await overlayMounts(box.name), box.name).toHaveLength(2);
        }
        await project.destroyOk();
    });
});
