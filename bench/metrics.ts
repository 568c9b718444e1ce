/** Figures the runner reads off the server's Prometheus endpoint (/metrics on the API socket). */
import http from "node:http";

function getMetrics(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath, path: "/metrics", method: "GET" }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () =>
        response.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${response.statusCode}`)),
      );
    });
    request.once("error", reject);
    request.end();
  });
}

/** Payload bytes of the NBD WRITEs that `disk` took since the server started. */
export async function nbdWrittenBytes(socketPath: string, disk: string): Promise<number> {
  const text = await getMetrics(socketPath);
  for (const line of text.split("\n")) {
    if (!line.startsWith("snaplog_disk_nbd_bytes_total{")) continue;
    if (line.includes(`disk="${disk}"`) && line.includes('command="write"')) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}
