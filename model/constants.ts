/** Config namespace: stack keys are `overlay-fleet:<key>`. */
export const configNamespace = "overlay-fleet";

/** Options pinned on every overlay mount and fstab line (design.md §3). */
export const pinnedMountOptions = ["index=off", "nfs_export=off", "redirect_dir=off", "metacopy=off"] as const;

export const maxInstancesPerBox = 64;

/** The file every box's managed mount lines live in. */
export const boxFstab = "/etc/fstab";

/** Legacy mount(2) option data must fit in one page. */
export const maxMountDataLength = 4095;

/** Highest cache generation (config `generation`; the host scripts refuse larger numbers). */
export const maxGeneration = 9999;

/** Generation N > 1 of a lower `L` is the sibling directory `L<generationSuffix>N`. */
export const generationSuffix = ".g";

/** Where a box records the instances its last apply planned, one file per box (`<dir>/<box>`). */
export const boxPlanDir = "/var/lib/overlay-fleet/plans";

/** Which stack a box belongs to (host/claim.sh): one line `<organization>/<project>/<stack> <box>`. */
export const boxClaimFile = "/var/lib/overlay-fleet/claim";

/** Docker label on every container overlay-fleet makes, with the instance id (`<box>/<name>`) as value. */
export const instanceLabel = "overlay-fleet.instance";

/** Docker label on the macvlan network overlay-fleet makes for a box, with the box name as value. */
export const boxLabel = "overlay-fleet.box";

/** How many containers of a box its containers command makes or checks at once (replacements are further limited by maxDownPerBox). */
export const containerJobsPerBox = 4;

/** Where image archives are copied on a box (one file per archive content). */
export const boxImageDir = "/var/lib/overlay-fleet/images";
