import { Logger } from './logger.js';

const logger = new Logger('worker');

export async function runJob(job) {
  logger.info('starting job', job.id);
  try {
    await job.run();
    logger.info('finished job', job.id);
  } catch (err) {
    logger.error('job failed', job.id, err);
    throw err;
  }
}
