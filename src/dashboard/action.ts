/**
 * The everyday actions' outcome on the page: busy while running (with progress for long
 * ones), then what was done, or the refusal with the server's own message and hint.
 */
import { useState } from "preact/hooks";
import { ApiError, type Progress } from "./api.js";
import { html } from "./html.js";
import { refreshStatus } from "./live.js";

export interface ActionState {
  busy: boolean;
  progress: Progress | null;
  done: string | null;
  refusal: { message: string; hint?: string } | null;
}

export interface Action extends ActionState {
  run(work: (onProgress: (progress: Progress) => void) => Promise<string>): Promise<void>;
}

export function useAction(): Action {
  const [state, setState] = useState<ActionState>({ busy: false, progress: null, done: null, refusal: null });
  const run = async (work: (onProgress: (progress: Progress) => void) => Promise<string>): Promise<void> => {
    setState({ busy: true, progress: null, done: null, refusal: null });
    try {
      const done = await work((progress) => setState((now) => ({ ...now, progress })));
      setState({ busy: false, progress: null, done, refusal: null });
    } catch (error) {
      const refusal = error instanceof ApiError ? { message: error.message, hint: error.hint } : { message: (error as Error).message };
      setState({ busy: false, progress: null, done: null, refusal });
    }
    await refreshStatus();
  };
  return { ...state, run };
}

export function Outcome({ action }: { action: ActionState }) {
  if (action.busy) {
    const progress = action.progress;
    const share = progress !== null && progress.total > 0 ? progress.done / progress.total : null;
    return html`<div class="outcome busy" role="status">
      Working…${share === null ? null : html` <progress max="1" value=${share}></progress> ${Math.round(share * 100)}%`}
    </div>`;
  }
  if (action.refusal !== null)
    return html`<div class="outcome refusal" role="alert">
      <strong>Refused:</strong>
      ${action.refusal.message}${action.refusal.hint === undefined ? null : html`<div class="hint">${action.refusal.hint}</div>`}
    </div>`;
  if (action.done !== null) return html`<div class="outcome done" role="status">${action.done}</div>`;
  return null;
}
