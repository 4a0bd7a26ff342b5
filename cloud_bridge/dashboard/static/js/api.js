// The bridge's JSON API, from the browser. The session is the HttpOnly cookie that
// POST /api/v1/login set: these scripts never see or keep the token.

export const MAX_PAGE = 500; // the API's page size limit

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.reason) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function apiUrl(path, query) {
  // Relative to the page (/dashboard/ -> /api/v1/), so a bridge behind a path prefix works too.
  const url = new URL(`../api/v1/${path}`, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

/** The address of an API path, for a link the browser follows itself (a download). */
export function apiHref(path) {
  return apiUrl(path).href;
}

/** GET (or POST with `body`) one API path; resolves to its JSON, or throws an ApiError. */
export async function call(path, { method = "GET", query, body } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, { error: "network", reason: String(error.message || error) });
  }
  const type = response.headers.get("content-type") || "";
  const data = type.startsWith("application/json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Every item of a paged list, up to `maxPages` pages of 500 (and whether that was all). */
export async function allPages(path, query = {}, maxPages = 10) {
  const items = [];
  let total = 0;
  for (let page = 0; page < maxPages; page += 1) {
    const answer = await call(path, { query: { ...query, limit: MAX_PAGE, offset: page * MAX_PAGE } });
    items.push(...answer.items);
    total = answer.total;
    if (items.length >= total || answer.items.length === 0) break;
  }
  return { items, total, complete: items.length >= total };
}
