// Fetch wrappers for the JSON API (../shared/API.md). Every failure becomes an ApiError carrying the server's
// {errors: {field: message}}, its status and, on 429, the Retry-After seconds.

export class ApiError extends Error {
  constructor(status, errors, retryAfter = null) {
    super(Object.entries(errors).map(([field, message]) => `${field}: ${message}`).join('; '));
    this.name = 'ApiError';
    Object.assign(this, { status, errors, retryAfter });
  }
}

async function call(method, path, { body, headers = {}, signal, text = false } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      signal,
      headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, { network: `the server did not answer (${error.message})` });
  }
  if (text && response.ok) return response.text();
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const errors = data?.errors ?? { server: `HTTP ${response.status} ${response.statusText}` };
    throw new ApiError(response.status, errors, Number(response.headers.get('Retry-After')) || null);
  }
  if (data === null) throw new ApiError(response.status, { server: 'the answer was not JSON' });
  return data;
}

export const getParams = () => call('GET', '/api/params');
export const privacy = (body, signal) => call('POST', '/api/privacy', { body, signal });
export const calibrate = (body, signal) => call('POST', '/api/privacy/calibrate', { body, signal });
export const startRun = (body) => call('POST', '/api/runs', { body });
export const suggest = (body) => call('POST', '/api/suggest', { body });
export const getRun = (id, since) => call('GET', `/api/runs/${encodeURIComponent(id)}`
  + (since === null || since === undefined ? '' : `?since=${since}`));
/** The take-home TF Privacy script for these knobs, as text (POST /api/export/script answers text/x-python). */
export const exportScript = (body) => call('POST', '/api/export/script', { body, text: true });
export const cancelRun = (id, token) => call('POST', `/api/runs/${encodeURIComponent(id)}/cancel`,
  { headers: { 'X-Run-Token': token } });
