// Loads the verdict vocabulary and the one reproducibility rule that kmrd
// generates from rebuilder/verdict (/ui/verdicts.js) and hands them to the
// classic scripts as KMR.verdicts. A module script without async runs in
// document order with the deferred scripts, so this runs before core.js.
import * as verdicts from './verdicts.js';

globalThis.KMR = Object.assign(globalThis.KMR || {}, { verdicts: verdicts });
