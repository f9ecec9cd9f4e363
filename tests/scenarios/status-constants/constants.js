export const STATUS = {
  ACTIVE: 'active',
  SUSPENDED: 'suspended',
  DELETED: 'deleted',
};

export const ROLES = ['admin', 'editor', 'viewer'];
