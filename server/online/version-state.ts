/**
 * What online learning changed on one served version since its bundle was loaded: the users
 * learned online (capped, online-users.ts) and which bundle users' and items' vectors moved. A
 * snapshot (snapshot.ts) saves exactly that, so the bundle plus the snapshot is the state.
 */
import type { ServingModel } from '../serving/serving-model.js';
import { OnlineUsers } from './online-users.js';
import { grownTo } from '../../core/typed-arrays.js';

export class VersionState {
  readonly users: OnlineUsers;
  /** 1 for bundle user rows whose vectors moved (online users are all saved) */
  readonly movedUsers: Uint8Array;
  /** 1 for item rows a round moved (grows with the items added online) */
  movedItems: Uint8Array;
  /**
   * Per item row, how far its vector may have drifted from the one the ANN index holds for it
   * (the summed lengths of its steps since it was last indexed: an upper bound). Rounds re-index
   * the most drifted first within a time budget; the rest carry their drift to the next round.
   */
  drift: Float32Array;
  /** records applied, and any change at all (rounds too), since the last snapshot */
  sinceSnapshot = 0;
  changed = false;
  /** performance.now() before which rounds re-link in place rather than rebuild the index (rebuildDuty) */
  nextRebuildAt = 0;
  /** log position of the last snapshot written or loaded (0: none) */
  snapshotPosition = 0;

  constructor(
    readonly m: ServingModel,
    maxOnlineUsers: number,
    onEvict?: () => void,
  ) {
    this.users = new OnlineUsers(m, maxOnlineUsers, onEvict);
    this.movedUsers = new Uint8Array(m.bundleUsers);
    this.movedItems = new Uint8Array(m.nItems);
    this.drift = new Float32Array(m.nItems);
  }

  setDrift(item: number, value: number): void {
    this.drift = grownTo(this.drift, item + 1);
    this.drift[item] = value;
  }

  /** Adds a round's per-item step lengths to the drift; returns how many items moved at all. */
  addDrift(moved: Float32Array): number {
    this.drift = grownTo(this.drift, moved.length);
    let touched = 0;
    for (let i = 0; i < moved.length; i++) {
      if (moved[i] === 0) continue;
      touched++;
      this.drift[i] += moved[i];
    }
    return touched;
  }

  /** Snapshots being copied: each collects the rows and items changed meanwhile (see snapshot.ts captureSteps). */
  private watchers: { users: Set<number>; items: Set<number> }[] = [];

  /** A user's vector or seen items changed (bundle rows are recorded; online users' rows are saved whole). */
  userMoved(row: number): void {
    if (row < this.movedUsers.length) this.movedUsers[row] = 1;
    this.changed = true;
    for (const w of this.watchers) w.users.add(row);
  }

  itemMoved(item: number): void {
    this.movedItems = grownTo(this.movedItems, item + 1);
    this.movedItems[item] = 1;
    this.changed = true;
    for (const w of this.watchers) w.items.add(item);
  }

  watch(): { users: Set<number>; items: Set<number> } {
    const w = { users: new Set<number>(), items: new Set<number>() };
    this.watchers.push(w);
    return w;
  }

  unwatch(w: { users: Set<number>; items: Set<number> }): void {
    this.watchers = this.watchers.filter((x) => x !== w);
  }
}
