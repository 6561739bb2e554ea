/** @module The workflow runs wire: the request body (the answer is the task, src/modules/tasks/model.ts). */
import { z } from 'zod'

/** The body may be left out (a run without inputs). */
export const runBody = z.object({
  inputs: z
    .record(z.string().min(1).max(300), z.unknown())
    .optional()
    .describe('Values to set before the run, by `"<node_id>.<input>"` (e.g. `"3.seed": 42`, `"6.text": "a cat"`): each must name a node of the workflow and one of its inputs'),
}).optional()
