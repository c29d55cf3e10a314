/** The metrics tests read /metrics with the dashboard's strict text-format parser. */
export { parsePrometheus, type Sample, type Scrape } from '../../src/dashboard/prom-text.js';
