/**
 * All of the rotation's activities, bound to one set of dependencies. The workflow sees only the
 * type; the worker and the tests call `createActivities`.
 */

import { auditActivities } from './audit';
import { adoptionActivities } from './await-adoption';
import { decommissionActivities } from './decommission';
import { deliveryActivities } from './delivery';
import type { ActivityDeps } from './deps';
import { keygenActivities } from './keygen';
import { notifyActivities } from './notify';
import { preflightActivities } from './preflight';
import { publishAnchorActivities } from './publish-anchor';
import { resignActivities } from './resign';
import { revokeActivities } from './revoke';

export function createActivities(deps: ActivityDeps) {
  return {
    ...preflightActivities(deps),
    ...keygenActivities(deps),
    ...resignActivities(deps),
    ...publishAnchorActivities(deps),
    ...adoptionActivities(deps),
    ...revokeActivities(deps),
    ...decommissionActivities(deps),
    ...deliveryActivities(deps),
    ...auditActivities(deps),
    ...notifyActivities(deps),
  };
}

export type RotationActivities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './deps';
