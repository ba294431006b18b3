// The README's first request, written against the generated client: if the spec stops
// describing what a client needs (ids, the result's fields, problem details), this stops
// compiling.
import {
  analysisGetResult,
  analysisGetStatus,
  analysisSubmit,
  type AnalysisResult,
  type ProblemDetail,
  type RiskLevel,
} from "./generated";
import { client } from "./generated/client.gen";

export async function analyse(
  baseUrl: string,
  image: Blob,
  symptoms: string,
): Promise<{ risk: RiskLevel | null; heatmap: string | null } | ProblemDetail> {
  client.setConfig({ baseUrl });
  const submitted = await analysisSubmit({ body: { image, symptoms } });
  if (submitted.error) return submitted.error as ProblemDetail;
  const { task_id, session_id } = submitted.data;
  const status = await analysisGetStatus({ path: { task_id }, query: { wait: 30 } });
  if (status.error) return status.error as ProblemDetail;
  const read = await analysisGetResult({ path: { session_id }, query: { heatmap: "url" } });
  if (read.error) return read.error as ProblemDetail;
  const result: AnalysisResult = read.data;
  const risk: RiskLevel | null = result.fusion?.final_risk ?? result.vision?.risk_level ?? null;
  return { risk, heatmap: result.vision?.heatmap_url ?? null };
}
