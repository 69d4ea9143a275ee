import { type DataSource } from 'typeorm';
import { type StudyRegistrations } from '../../../domain/hpo/study-results.service';

/** study_registration: its insert trigger draws the lineage edges (migration study-lineage). */
export class SqlStudyRegistrations implements StudyRegistrations {
  constructor(private readonly ds: DataSource) {}

  async record(studyId: string, trialId: string, modelVersionId: string): Promise<void> {
    await this.ds.query(
      `INSERT INTO study_registration (study_id, trial_id, model_version_id) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING`,
      [studyId, trialId, modelVersionId],
    );
  }
}
