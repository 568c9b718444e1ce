/**
 * The dashboard (SPEC §3.3). On TCP the page first asks for the API token (once per browser
 * tab), then shows the appliance live: views are chosen by the address's #fragment, so a
 * view can be linked and the back button works.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, call, saveToken, savedToken } from "./api.js";
import { DiskView } from "./disk-view.js";
import { EventList } from "./events-view.js";
import { html } from "./html.js";
import { startLive, useLive } from "./live.js";
import { Overview } from "./overview.js";
import { ReplicationView } from "./replication-view.js";
import { VaultsView } from "./vaults-view.js";

function useRoute(): string {
  const [route, setRoute] = useState(location.hash.replace(/^#/, "") || "/");
  useEffect(() => {
    const onChange = () => setRoute(location.hash.replace(/^#/, "") || "/");
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

function tokenRequired(): boolean {
  return document.querySelector('meta[name="snaplog-token"]')?.getAttribute("content") === "required";
}

type Access = "checking" | "token-needed" | "ok";

function App() {
  const [access, setAccess] = useState<Access>("checking");
  const [problem, setProblem] = useState<string | null>(null);
  const check = async () => {
    // On TCP the page says a token is needed: ask before the first call rather than be refused.
    if (tokenRequired() && savedToken() === null) {
      setAccess("token-needed");
      return;
    }
    try {
      await call("GET", "/v1/status");
      setAccess("ok");
      setProblem(null);
      startLive();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (savedToken() !== null) setProblem("That token was refused: it is wrong, or it was rotated.");
        saveToken(null);
        setAccess("token-needed");
      } else setProblem(`The appliance does not answer: ${(error as Error).message}`);
    }
  };
  useEffect(() => void check(), []);
  if (access === "token-needed")
    return html`<${Login} problem=${problem} onToken=${(token: string) => (saveToken(token), void check())} />`;
  if (access === "checking") return html`<p class="loading">${problem ?? "Connecting…"}</p>`;
  return html`<${Shell} />`;
}

function Login({ problem, onToken }: { problem: string | null; onToken: (token: string) => void }) {
  const [token, setToken] = useState("");
  return html`<main class="login">
    <h1>snaplog</h1>
    <form
      onSubmit=${(event: Event) => {
        event.preventDefault();
        onToken(token.trim());
      }}
      aria-label="sign in"
    >
      <label
        >API token
        <input
          type="password"
          name="token"
          autocomplete="off"
          value=${token}
          onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)}
          required
      /></label>
      <button>Open the dashboard</button>
      <p class="muted">
        The token is in the store's <code>api.token</code> file (<code>snaplog serve</code> prints where). It is kept for this tab only.
      </p>
      ${problem === null ? null : html`<div class="outcome refusal" role="alert">${problem}</div>`}
    </form>
  </main>`;
}

function Shell() {
  const live = useLive();
  const route = useRoute();
  const disks = live.status?.disks ?? [];
  const diskMatch = /^\/disks\/(.+)$/.exec(route);
  const diskName = diskMatch === null ? null : decodeURIComponent(diskMatch[1]);
  const link = (href: string, label: string, active: boolean) => html`<a href=${`#${href}`} class=${active ? "active" : ""}>${label}</a>`;
  let view;
  if (diskName !== null) view = html`<${DiskView} key=${diskName} name=${diskName} live=${live} />`;
  else if (route === "/vaults")
    view = html`<h2>Vaults and archives</h2>
      <${VaultsView} live=${live} />`;
  else if (route === "/replication") view = html`<${ReplicationView} live=${live} />`;
  else if (route === "/events")
    view = html`<h2>Event log</h2>
      <${EventList} events=${live.events} />`;
  else view = html`<${Overview} live=${live} />`;
  return html`<header>
      <h1><a href="#/">snaplog</a></h1>
      <nav>
        ${link("/", "Overview", route === "/")}
        ${disks.map((disk) => link(`/disks/${encodeURIComponent(disk.name)}`, disk.name, disk.name === diskName))}
        ${link("/vaults", "Vaults", route === "/vaults")} ${link("/replication", "Replication and mirrors", route === "/replication")}
        ${link("/events", "Events", route === "/events")}
      </nav>
      <span class=${live.problem === null ? "live-dot on" : "live-dot off"} title=${live.problem ?? "live"}
        >${live.problem === null ? "live" : "reconnecting"}</span
      >
    </header>
    ${live.problem === null ? null : html`<div class="banner" role="status">${live.problem}</div>`}
    <main>${view}</main>`;
}

const root = document.getElementById("app");
if (root !== null) render(html`<${App} />`, root);
